"""In the admin an operator sets up a tenant, an event type and an endpoint, and sees deliveries."""

from __future__ import annotations

import re

import pytest

from deliveries.models import Attempt, Delivery
from subscriptions.models import ApiKey, Endpoint, EventType, Tenant
from subscriptions.services import hash_api_key
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event
from webhooks.services import event_send

pytestmark = pytest.mark.django_db


def test_operator_creates_tenant_event_type_and_endpoint(admin_client):
    response = admin_client.post(
        "/admin/subscriptions/tenant/add/",
        {"slug": "acme", "name": "Acme", "is_active": "on", "created_at_0": "2026-11-29",
         "created_at_1": "10:00:00", "api_keys-TOTAL_FORMS": "0", "api_keys-INITIAL_FORMS": "0"},
    )  # fmt: skip
    assert response.status_code == 302, response.content
    response = admin_client.post(
        "/admin/subscriptions/eventtype/add/",
        {"name": "order.paid", "description": "Paid", "schema": "null",
         "created_at_0": "2026-11-29", "created_at_1": "10:00:00"},
    )  # fmt: skip
    assert response.status_code == 302, response.content
    tenant, paid = Tenant.objects.get(slug="acme"), EventType.objects.get(name="order.paid")

    response = admin_client.post(
        "/admin/subscriptions/endpoint/add/",
        {"tenant": tenant.pk, "url": "http://127.0.0.1:8000/hook", "event_types": [paid.pk],
         "is_active": "on", "headers": "{}", "payload_format": "xml",
         "created_at_0": "2026-11-29", "created_at_1": "10:00:00"},
    )  # fmt: skip

    assert response.status_code == 302, response.content
    endpoint = Endpoint.objects.get(tenant=tenant)
    assert list(endpoint.event_types.all()) == [paid]
    assert endpoint.payload_format == "xml"
    assert endpoint.secret.startswith("whsec_")


def test_admin_refuses_an_endpoint_on_a_private_address(admin_client, settings):
    settings.WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST = ()
    tenant = TenantFactory()

    response = admin_client.post(
        "/admin/subscriptions/endpoint/add/",
        {"tenant": tenant.pk, "url": "http://127.0.0.1:8000/hook", "is_active": "on",
         "headers": "{}", "created_at_0": "2026-11-29", "created_at_1": "10:00:00"},
    )  # fmt: skip

    assert response.status_code == 200
    assert b"private or reserved address" in response.content
    assert not Endpoint.objects.exists()


def test_admin_shows_deliveries_with_their_attempts(admin_client):
    tenant = TenantFactory()
    EventTypeFactory(name="order.paid")
    EndpointFactory(tenant=tenant, url="http://127.0.0.1:8000/hook")
    event = send_event(tenant, "order.paid", {"n": 1})
    delivery = Delivery.objects.get(event=event)
    Attempt.objects.create(
        delivery=delivery, number=1, started_at=delivery.created_at, duration_ms=12.5,
        url="http://127.0.0.1:8000/hook", response_status=503, error_kind="http_status",
        error_message="HTTP 503",
    )  # fmt: skip

    listing = admin_client.get("/admin/deliveries/delivery/")
    detail = admin_client.get(f"/admin/deliveries/delivery/{delivery.pk}/change/")
    event_page = admin_client.get(f"/admin/webhooks/event/{event.pk}/change/")

    assert listing.status_code == detail.status_code == event_page.status_code == 200
    assert event.public_id.encode() in listing.content
    assert b"HTTP 503" in detail.content
    assert b"http://127.0.0.1:8000/hook" in event_page.content


def test_admin_shows_an_events_payload_as_the_host_sent_it_and_read_only(admin_client):
    tenant = TenantFactory()
    EventTypeFactory(name="order.paid")
    event = event_send(
        tenant=tenant,
        event_type="order.paid",
        payload={"zeta": 1.1, "alpha": 1e308},
        payload_text='{"zeta": 1.10, "alpha": 1e308}',
    )

    page = admin_client.get(f"/admin/webhooks/event/{event.pk}/change/")

    assert page.status_code == 200
    expected = "<pre>{\n  &quot;zeta&quot;: 1.10,\n  &quot;alpha&quot;: 1e308\n}</pre>"
    assert expected in page.content.decode()
    assert 'name="payload"' not in page.content.decode()


@pytest.mark.parametrize(
    "path",
    [
        "/admin/subscriptions/tenant/",
        "/admin/subscriptions/apikey/",
        "/admin/subscriptions/eventtype/",
        "/admin/subscriptions/endpoint/",
        "/admin/webhooks/event/",
        "/admin/deliveries/delivery/",
        "/admin/deliveries/attempt/",
        "/admin/deliveries/inbox/",
    ],
)
def test_every_admin_list_renders(admin_client, path):
    assert admin_client.get(path).status_code == 200


def test_endpoint_secret_is_never_shown_in_the_admin(admin_client):
    endpoint = EndpointFactory(url="http://127.0.0.1:8000/hook")
    page = admin_client.get(f"/admin/subscriptions/endpoint/{endpoint.pk}/change/")
    assert page.status_code == 200
    assert endpoint.secret.encode() not in page.content


def test_admin_creates_an_api_key_shown_once_and_revokes_it(admin_client):
    tenant = TenantFactory()

    page = admin_client.post(
        "/admin/subscriptions/tenant/",
        {"action": "create_api_key", "_selected_action": [tenant.pk]},
        follow=True,
    )

    key = re.search(rb"shown only now: (hl_[\w-]+)", page.content).group(1).decode()
    api_key = ApiKey.objects.get(tenant=tenant)
    assert api_key.key_hash == hash_api_key(key)
    admin_client.post(
        "/admin/subscriptions/apikey/", {"action": "revoke", "_selected_action": [api_key.pk]}
    )
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert (
        key.encode()
        not in admin_client.get(f"/admin/subscriptions/tenant/{tenant.pk}/change/").content
    )


def test_admin_delivery_list_filters_by_tenant_endpoint_type_and_date(admin_client):
    paid = EventTypeFactory(name="order.paid")
    mine, other = TenantFactory(slug="mine"), TenantFactory(slug="other")
    EndpointFactory(tenant=mine, url="http://127.0.0.1:8000/mine")
    EndpointFactory(tenant=other, url="http://127.0.0.1:8000/other")
    mine_event = send_event(mine, "order.paid", {})
    other_event = send_event(other, "order.paid", {})

    page = admin_client.get(f"/admin/deliveries/delivery/?endpoint__tenant__id__exact={mine.pk}")
    mine_endpoint = Endpoint.objects.get(tenant=mine)
    by_type = admin_client.get(
        f"/admin/deliveries/delivery/?event__event_type__id__exact={paid.pk}"
    )
    by_endpoint = admin_client.get(
        f"/admin/deliveries/delivery/?endpoint__id__exact={mine_endpoint.pk}"
    )
    today = admin_client.get(
        "/admin/deliveries/delivery/?created_at__gte=2000-01-01+00:00:00%2B00:00"
    )

    assert mine_event.public_id.encode() in page.content
    assert other_event.public_id.encode() not in page.content
    assert by_type.status_code == today.status_code == by_endpoint.status_code == 200
    assert other_event.public_id.encode() in by_type.content
    assert other_event.public_id.encode() not in by_endpoint.content
    assert mine_event.public_id.encode() in today.content
