"""Portal links: the host application hands its customer a signed, short-lived dashboard link."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from deliveries.batch import deliver_due_batch
from deliveries.models import Delivery
from subscriptions.services import api_key_create
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme():
    EventTypeFactory(name="order.paid")
    tenant = TenantFactory(slug="acme", name="Acme")
    EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/acme-hook")
    return tenant


@pytest.fixture
def globex():
    tenant = TenantFactory(slug="globex", name="Globex")
    EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/globex-hook")
    return tenant


def portal_link(tenant, **body) -> dict:
    _, key = api_key_create(tenant=tenant)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = api.post("/api/v1/portal-links/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def path_of(url: str) -> str:
    return url.split("testserver", 1)[1]


def test_portal_link_opens_the_dashboard_for_that_tenant_alone(client, acme, globex):
    link = portal_link(acme)

    opened = client.get(path_of(link["url"]), follow=True)

    assert opened.status_code == 200
    assert b"Viewing <strong>Acme</strong>" in opened.content
    assert b"read-only" in opened.content
    endpoints = client.get("/dashboard/endpoints/").content
    assert b"acme-hook" in endpoints
    assert b"globex-hook" not in endpoints
    assert client.get("/dashboard/endpoints/?tenant=globex").content.count(b"globex-hook") == 0


def test_read_only_portal_session_shows_no_replay_and_may_not_replay(client, acme, settings):
    settings.WEBHOOKS_RETRY_SCHEDULE = ()
    event = send_event(acme, "order.paid", {})
    deliver_due_batch(limit=10)
    delivery = Delivery.objects.get(event=event)
    client.get(path_of(portal_link(acme)["url"]))

    page = client.get(f"/dashboard/deliveries/{delivery.pk}/")

    assert page.status_code == 200
    html = page.content.decode()
    assert f"/dashboard/deliveries/{delivery.pk}/replay/" not in html, html[
        html.find("Replay") - 200 :
    ][:400]
    assert client.post(f"/dashboard/deliveries/{delivery.pk}/replay/").status_code == 403
    assert Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.FAILED


def test_portal_link_with_replay_capability_may_replay(client, acme, settings):
    settings.WEBHOOKS_RETRY_SCHEDULE = ()
    event = send_event(acme, "order.paid", {})
    deliver_due_batch(limit=10)
    delivery = Delivery.objects.get(event=event)
    link = portal_link(acme, capabilities=["replay"], expires_in=600)
    assert link["capabilities"] == ["replay", "view"]
    client.get(path_of(link["url"]))

    response = client.post(f"/dashboard/deliveries/{delivery.pk}/replay/")

    assert response.status_code == 302
    assert Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.PENDING


def test_tampered_portal_link_is_refused(client, acme, globex):
    url = path_of(portal_link(acme)["url"])
    tampered = url.replace(url.rstrip("/").rsplit(":", 1)[-1], "AAAAAAAAAAAAAAAAAAAAAAAAAAA")

    response = client.get(tampered)

    assert response.status_code == 403
    assert b"This link is invalid." in response.content
    assert client.get("/dashboard/").status_code == 302  # still no session


def test_expired_portal_link_is_refused_and_an_expired_session_ends(client, acme):
    link = portal_link(acme, expires_in=60)
    client.get(path_of(link["url"]))
    assert client.get("/dashboard/").status_code == 200

    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        assert client.get(path_of(link["url"])).status_code == 403
        assert client.get("/dashboard/").status_code == 302


@pytest.mark.parametrize(
    "body",
    [
        {"capabilities": ["root"]},
        {"expires_in": 5},
        {"expires_in": 10**7},
        {"capabilities": "view"},
    ],
)
def test_portal_link_request_is_validated(acme, body):
    _, key = api_key_create(tenant=acme)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.post("/api/v1/portal-links/", body, format="json").status_code == 400


def test_portal_links_need_an_api_key(acme):
    assert APIClient().post("/api/v1/portal-links/", {}, format="json").status_code == 401
