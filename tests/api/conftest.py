"""Fixtures for the REST API tests: two tenants, each with its own API key and client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from deliveries.models import Attempt, Delivery, ReplayJob
from subscriptions.models import TEST_EVENT_TYPE, ApiKey, Endpoint, EventType, Tenant
from subscriptions.services import api_key_create
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks.models import Event

ORDER_SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "amount": {"type": "integer"}},
    "required": ["order_id"],
}


def db_state() -> dict[str, Any]:
    """Every row the API can change (but API keys, whose last_used_at moves on every call)."""
    return {
        "endpoints": list(Endpoint.objects.order_by("id").values()),
        "subscriptions": list(Endpoint.event_types.through.objects.order_by("id").values()),
        "event_types": list(EventType.objects.order_by("id").values()),
        "events": list(Event.objects.order_by("id").values()),
        "deliveries": list(Delivery.objects.order_by("id").values()),
        "attempts": list(Attempt.objects.order_by("id").values()),
        "replay_jobs": list(ReplayJob.objects.order_by("id").values()),
    }


def assert_error_body(response, code: str | None = None) -> dict[str, Any]:
    """The one error shape: a code and one human sentence (plus `fields` for invalid input)."""
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    body = response.json()
    assert isinstance(body.get("code"), str)
    assert body["code"]
    detail = body.get("detail")
    assert isinstance(detail, str)
    assert detail.strip()
    assert "\n" not in detail
    assert detail[0] not in "[{", detail
    if code is not None:
        assert body["code"] == code, body
    if code == "invalid":
        assert isinstance(body.get("fields"), dict)
        assert body["fields"]
    return body


def client_for(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture(autouse=True)
def _fresh_rate_limit_counters():
    # Throttle counters live in the shared cache; start each test with none.
    cache.clear()


@pytest.fixture
def tenant_a(db) -> Tenant:
    return TenantFactory(slug="tenant-a")


@pytest.fixture
def tenant_b(db) -> Tenant:
    return TenantFactory(slug="tenant-b")


@pytest.fixture
def key_a(tenant_a) -> tuple[ApiKey, str]:
    return api_key_create(tenant=tenant_a, name="a")


@pytest.fixture
def api(key_a) -> APIClient:
    """Tenant A's client."""
    return client_for(key_a[1])


@pytest.fixture
def other_api(tenant_b) -> APIClient:
    """Tenant B's client."""
    return client_for(api_key_create(tenant=tenant_b, name="b")[1])


@pytest.fixture
def staff_api(tenant_a) -> APIClient:
    return client_for(api_key_create(tenant=tenant_a, name="staff", is_staff=True)[1])


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def order_paid(db) -> EventType:
    event_type = EventTypeFactory(name="order.paid")
    event_type.schema, event_type.archived = ORDER_SCHEMA, False
    event_type.save()
    return event_type


@pytest.fixture
def test_event_type(db) -> EventType:
    # Made by a migration, but a transactional test elsewhere may have flushed it.
    return EventTypeFactory(name=TEST_EVENT_TYPE)


@pytest.fixture
def endpoint_a(tenant_a) -> Endpoint:
    return EndpointFactory(tenant=tenant_a, url="http://127.0.0.1:9/a")


@pytest.fixture
def endpoint_b(tenant_b) -> Endpoint:
    return EndpointFactory(tenant=tenant_b, url="http://127.0.0.1:9/b")


@pytest.fixture
def make_delivery(order_paid) -> Callable[..., Delivery]:
    """A stored event with one delivery to `endpoint`, in any status, without sending anything."""

    def make(
        endpoint: Endpoint,
        status: str = Delivery.Status.FAILED,
        *,
        event_type: EventType | None = None,
        payload: dict[str, Any] | None = None,
        created_at=None,
    ) -> Delivery:
        created_at = created_at or timezone.now()
        event = Event.objects.create(
            tenant=endpoint.tenant,
            event_type=event_type or order_paid,
            payload=payload if payload is not None else {"order_id": "o-1"},
            created_at=created_at,
        )
        finished = status != Delivery.Status.PENDING
        return Delivery.objects.create(
            event=event,
            endpoint=endpoint,
            status=status,
            attempt_count=1 if finished else 0,
            next_attempt_at=None if finished else timezone.now(),
            finished_at=timezone.now() if finished else None,
            created_at=created_at,
        )

    return make
