"""Endpoint filters in the admin: set on the endpoint form, refused there with their position."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from deliveries.models import Delivery
from subscriptions.models import Endpoint
from subscriptions.services import endpoint_create
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event

pytestmark = pytest.mark.django_db

FORM = {"url": "http://127.0.0.1:8000/hook", "payload_format": "json", "headers": "{}",
        "is_active": "on", "created_at_0": "2026-11-29", "created_at_1": "10:00:00"}  # fmt: skip


def test_an_operator_adds_an_endpoint_with_a_filter_and_it_gets_only_what_matches(admin_client):
    tenant = TenantFactory()
    EventTypeFactory(name="order.paid")

    response = admin_client.post(
        "/admin/subscriptions/endpoint/add/",
        {**FORM, "tenant": tenant.pk, "filter": 'data.currency == "EUR"'},
    )

    assert response.status_code == 200, response.content  # the page that shows its secret once
    endpoint = Endpoint.objects.get(tenant=tenant)
    assert endpoint.filter == 'data.currency == "EUR"'
    send_event(tenant, "order.paid", {"currency": "USD"})
    send_event(tenant, "order.paid", {"currency": "EUR"})
    [delivery] = Delivery.objects.filter(endpoint=endpoint).select_related("event")
    assert delivery.event.payload == {"currency": "EUR"}


def test_the_endpoint_page_shows_the_filter_and_changes_it(admin_client):
    endpoint = EndpointFactory(filter="data.amount > 10")
    path = f"/admin/subscriptions/endpoint/{endpoint.pk}/change/"

    page = admin_client.get(path).content.decode()
    response = admin_client.post(
        path, {**FORM, "tenant": endpoint.tenant_id, "url": endpoint.url, "filter": ""}
    )

    assert 'name="filter"' in page
    assert "data.amount &gt; 10" in page
    assert response.status_code == 302, response.content.decode()
    endpoint.refresh_from_db()
    assert endpoint.filter == ""


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("data.amount >", "line 1, column 14: unexpected end"),
        ("data.amount > 1 &&\r\n  order.id == 2", "line 2, column 3: unknown variable &#x27;order"),
        ("data.x == 1 && " * 200 + "true", "The filter is 3,004 characters long"),
    ],
)
def test_a_bad_filter_is_refused_on_the_form_with_its_position(admin_client, expression, message):
    endpoint = EndpointFactory(filter="data.amount > 10")
    path = f"/admin/subscriptions/endpoint/{endpoint.pk}/change/"

    response = admin_client.post(
        path, {**FORM, "tenant": endpoint.tenant_id, "url": endpoint.url, "filter": expression}
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert message in page, page[page.find("errorlist") - 200 : page.find("errorlist") + 400]
    endpoint.refresh_from_db()
    assert endpoint.filter == "data.amount > 10"


def test_a_nul_in_a_filter_is_refused_on_the_form(admin_client):
    tenant = TenantFactory()

    response = admin_client.post(
        "/admin/subscriptions/endpoint/add/",
        {**FORM, "tenant": tenant.pk, "filter": "data.x == '\x00'"},
    )

    assert response.status_code == 200
    assert "Null characters are not allowed" in response.content.decode()
    assert not Endpoint.objects.exists()


def test_the_model_refuses_a_bad_filter_naming_the_field():
    endpoint = EndpointFactory.build(tenant=TenantFactory(), filter="data.amount >")

    with pytest.raises(ValidationError) as refused:
        endpoint.full_clean()

    assert refused.value.message_dict == {"filter": ["line 1, column 14: unexpected end"]}


def test_the_model_drops_spaces_around_a_filter():
    endpoint = EndpointFactory.build(tenant=TenantFactory(), filter="  true \n")

    endpoint.full_clean()

    assert endpoint.filter == "true"


def test_the_service_that_registers_an_endpoint_checks_its_filter():
    tenant = TenantFactory()

    with pytest.raises(ValidationError) as refused:
        endpoint_create(tenant=tenant, url="http://127.0.0.1:9/hook", filter="data.amount >")
    endpoint = endpoint_create(tenant=tenant, url="http://127.0.0.1:9/hook", filter=" true ")

    assert "line 1, column 14" in refused.value.message_dict["filter"][0]
    assert endpoint.filter == "true"
    assert Endpoint.objects.get(tenant=tenant).id == endpoint.id
