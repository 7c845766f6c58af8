"""An endpoint's payload format in the admin and on the dashboard."""

from __future__ import annotations

import pytest

from tests.factories import EndpointFactory

pytestmark = pytest.mark.django_db


def test_admin_lists_endpoints_by_payload_format(admin_client):
    EndpointFactory(url="http://127.0.0.1:9/xml-receiver", payload_format="xml")
    EndpointFactory(url="http://127.0.0.1:9/json-receiver")

    page = admin_client.get("/admin/subscriptions/endpoint/", {"payload_format__exact": "xml"})

    html = page.content.decode()
    assert page.status_code == 200
    assert "xml-receiver" in html
    assert "json-receiver" not in html
    assert "By payload format" in html


def test_admin_change_form_offers_every_format(admin_client):
    endpoint = EndpointFactory(url="http://127.0.0.1:9/hook", payload_format="form")

    page = admin_client.get(f"/admin/subscriptions/endpoint/{endpoint.pk}/change/")

    html = page.content.decode()
    assert '<option value="form" selected>Form fields</option>' in html
    assert '<option value="xml">XML</option>' in html


def test_dashboard_endpoint_page_shows_the_payload_format(admin_client):
    endpoint = EndpointFactory(url="http://127.0.0.1:9/hook", payload_format="xml")

    page = admin_client.get(f"/dashboard/endpoints/{endpoint.pk}/")

    html = page.content.decode()
    assert page.status_code == 200
    assert 'Payload format</div><span title="How each body is encoded' in html
    assert ">XML</span>" in html
