from __future__ import annotations

import datetime
import decimal

import pytest
from django.test import override_settings

from deliveries.models import Delivery
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event
from webhooks.errors import (
    InvalidPayloadError,
    PayloadTooLargeError,
    UnknownEventTypeError,
    UnknownTenantError,
)
from webhooks.models import Event
from webhooks.wire import message

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant():
    tenant = TenantFactory(slug="acme")
    EndpointFactory(tenant=tenant)
    return tenant


@pytest.fixture
def paid():
    return EventTypeFactory(name="order.paid")


def assert_nothing_stored() -> None:
    assert Event.objects.count() == 0
    assert Delivery.objects.count() == 0


@pytest.mark.pgbouncer
def test_send_event_stores_event_and_one_pending_delivery_per_endpoint(tenant, paid):
    second = EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/second")

    event = send_event(tenant, "order.paid", {"order_id": "o1"})

    assert event.public_id.startswith("msg_")
    assert event.payload == {"order_id": "o1"}
    deliveries = list(Delivery.objects.filter(event=event).order_by("id"))
    assert [d.endpoint_id for d in deliveries][-1] == second.id
    assert {d.status for d in deliveries} == {Delivery.Status.PENDING}
    assert all(d.next_attempt_at is not None for d in deliveries)


def test_a_python_payload_is_sent_in_its_own_key_order_serialised_once(tenant, paid):
    send_event(tenant, "order.paid", {"zeta": 1, "alpha": [2.5, "Zoë"], "mid": None})

    stored = Event.objects.get()  # as a worker loads it
    body = message(stored, "order.paid").content

    assert body.endswith(',"data":{"zeta":1,"alpha":[2.5,"Zoë"],"mid":null}}'.encode())


def test_send_event_accepts_a_tenant_slug(tenant, paid):
    assert send_event("acme", "order.paid", {}).tenant == tenant


def test_unknown_event_type_is_refused_and_nothing_stored(tenant, paid):
    with pytest.raises(UnknownEventTypeError, match="Unknown event type 'order.refunded'"):
        send_event(tenant, "order.refunded", {})
    assert_nothing_stored()


def test_event_type_name_with_nul_is_refused_as_unknown(tenant, paid):
    with pytest.raises(UnknownEventTypeError, match="Unknown event type"):
        send_event(tenant, "order\x00paid", {})
    assert_nothing_stored()


def test_archived_event_type_is_refused(tenant):
    EventTypeFactory(name="order.legacy", archived=True)
    with pytest.raises(UnknownEventTypeError, match="archived"):
        send_event(tenant, "order.legacy", {})
    assert_nothing_stored()


def test_unknown_tenant_is_refused_and_nothing_stored(paid):
    with pytest.raises(UnknownTenantError, match="No active tenant with slug 'nobody'"):
        send_event("nobody", "order.paid", {})
    assert_nothing_stored()


def test_inactive_tenant_is_refused(tenant, paid):
    tenant.is_active = False
    tenant.save(update_fields=["is_active"])
    with pytest.raises(UnknownTenantError, match="not active"):
        send_event(tenant, "order.paid", {})
    assert_nothing_stored()


@pytest.mark.parametrize(
    "payload",
    [
        {"when": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)},
        {"amount": decimal.Decimal("1.5")},
        {"ratio": float("nan")},
        {"items": {1, 2}},
    ],
)
def test_payload_that_is_not_json_serialisable_is_refused(tenant, paid, payload):
    with pytest.raises(InvalidPayloadError, match="not JSON-serialisable"):
        send_event(tenant, "order.paid", payload)
    assert_nothing_stored()


@pytest.mark.parametrize("payload", [{"note": "a\ud800b"}, {"\udfff": 1}], ids=["value", "key"])
def test_payload_with_an_unpaired_surrogate_is_refused(tenant, paid, payload):
    with pytest.raises(InvalidPayloadError, match="unpaired surrogate"):
        send_event(tenant, "order.paid", payload)
    assert_nothing_stored()


@pytest.mark.parametrize("payload", [[1, 2], "text", None, 3])
def test_payload_must_be_a_json_object(tenant, paid, payload):
    with pytest.raises(InvalidPayloadError, match="must be a JSON object"):
        send_event(tenant, "order.paid", payload)
    assert_nothing_stored()


@override_settings(WEBHOOKS_MAX_PAYLOAD_BYTES=100)
def test_oversized_payload_is_refused(tenant, paid):
    with pytest.raises(PayloadTooLargeError, match="the limit is 100 bytes"):
        send_event(tenant, "order.paid", {"blob": "x" * 200})
    assert_nothing_stored()


def test_payload_failing_the_event_type_schema_is_refused(tenant):
    EventTypeFactory(
        name="order.shipped",
        schema={
            "type": "object",
            "required": ["order_id"],
            "properties": {"order_id": {"type": "string"}},
        },
    )
    with pytest.raises(InvalidPayloadError, match="order_id"):
        send_event(tenant, "order.shipped", {"order_id": 7})
    assert_nothing_stored()
    assert send_event(tenant, "order.shipped", {"order_id": "o7"}).pk


@pytest.mark.pgbouncer
def test_repeated_idempotency_key_returns_the_first_event(tenant, paid):
    first = send_event(tenant, "order.paid", {"n": 1}, idempotency_key="k-1")
    again = send_event(tenant, "order.paid", {"n": 2}, idempotency_key="k-1")

    assert again.pk == first.pk
    assert Event.objects.count() == 1
    assert Delivery.objects.count() == 1


def test_same_idempotency_key_in_two_tenants_makes_two_events(tenant, paid):
    other = TenantFactory(slug="globex")
    send_event(tenant, "order.paid", {}, idempotency_key="k-1")
    send_event(other, "order.paid", {}, idempotency_key="k-1")
    assert Event.objects.count() == 2


def test_event_with_no_subscribed_endpoint_is_stored_without_deliveries(paid):
    lonely = TenantFactory(slug="lonely")
    event = send_event(lonely, "order.paid", {})
    assert event.deliveries.count() == 0
