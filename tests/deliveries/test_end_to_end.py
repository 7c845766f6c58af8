"""End to end: send_event → a real Celery worker on the real broker → a real HTTP receiver."""

from __future__ import annotations

import json
import time

import pytest
import standardwebhooks
from django.db import transaction
from rest_framework.test import APIClient

from deliveries.models import Attempt, Delivery
from subscriptions.services import api_key_create
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event
from webhooks.models import Event
from webhooks.wire import iso_timestamp

pytestmark = [pytest.mark.services]


def wait_until_finished(event: Event, timeout: float = 20) -> list[Delivery]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deliveries = list(event.deliveries.order_by("id"))
        if all(d.status != Delivery.Status.PENDING for d in deliveries):
            return deliveries
        time.sleep(0.05)
    raise AssertionError(f"deliveries of {event.public_id} still pending after {timeout} s")


@pytest.mark.pgbouncer
def test_event_reaches_every_subscribed_endpoint_and_no_other(worker, receiver):
    tenant = TenantFactory()
    paid, created = EventTypeFactory(name="order.paid"), EventTypeFactory(name="user.created")
    EndpointFactory(tenant=tenant, url=receiver.url("/paid"), event_types=[paid])
    EndpointFactory(tenant=tenant, url=receiver.url("/both"), event_types=[paid, created])
    EndpointFactory(tenant=tenant, url=receiver.url("/users"), event_types=[created])
    EndpointFactory(url=receiver.url("/other-tenant"), event_types=[paid])

    event = send_event(tenant, "order.paid", {"order_id": "o1"})

    deliveries = wait_until_finished(event)
    assert [d.status for d in deliveries] == ["succeeded", "succeeded"]
    assert len(receiver.wait_for(1, "/paid")) == 1
    assert len(receiver.wait_for(1, "/both")) == 1
    time.sleep(0.3)
    assert receiver.requests("/users") == []
    assert receiver.requests("/other-tenant") == []


def test_endpoint_without_event_types_receives_every_event(worker, receiver):
    tenant = TenantFactory()
    EventTypeFactory(name="order.paid"), EventTypeFactory(name="user.created")
    EndpointFactory(tenant=tenant, url=receiver.url("/all"))

    send_event(tenant, "order.paid", {"n": 1})
    send_event(tenant, "user.created", {"n": 2})

    received = receiver.wait_for(2, "/all")
    assert sorted(json.loads(r.body)["type"] for r in received) == ["order.paid", "user.created"]


def test_disabled_endpoint_receives_nothing(worker, receiver):
    tenant = TenantFactory()
    EventTypeFactory(name="order.paid")
    EndpointFactory(tenant=tenant, url=receiver.url("/off"), is_active=False)
    EndpointFactory(tenant=tenant, url=receiver.url("/on"))

    event = send_event(tenant, "order.paid", {"n": 1})

    receiver.wait_for(1, "/on")
    assert event.deliveries.count() == 1
    time.sleep(0.3)
    assert receiver.requests("/off") == []


@pytest.mark.pgbouncer
def test_rolled_back_transaction_sends_nothing(worker, receiver):
    tenant = TenantFactory()
    EventTypeFactory(name="order.paid")
    EndpointFactory(tenant=tenant, url=receiver.url("/hook"))

    def failing_caller() -> None:
        with transaction.atomic():
            send_event(tenant, "order.paid", {"rolled": "back"})
            raise RuntimeError("the caller's transaction fails")

    with pytest.raises(RuntimeError):
        failing_caller()
    committed = send_event(tenant, "order.paid", {"rolled": "no"})

    wait_until_finished(committed)
    received = receiver.wait_for(1, "/hook")
    time.sleep(0.3)
    assert [json.loads(r.body)["data"] for r in receiver.requests("/hook")] == [{"rolled": "no"}]
    assert Event.objects.count() == 1
    assert len(received) == 1


def test_signature_verifies_with_the_standardwebhooks_package(worker, receiver):
    tenant = TenantFactory()
    EventTypeFactory(name="order.paid")
    endpoint = EndpointFactory(tenant=tenant, url=receiver.url("/signed"))

    event = send_event(tenant, "order.paid", {"order_id": "o-42", "amount": 1999})

    [request] = receiver.wait_for(1, "/signed")
    verified = standardwebhooks.Webhook(endpoint.secret).verify(request.body, request.headers)
    assert verified["data"] == {"order_id": "o-42", "amount": 1999}
    assert verified["type"] == "order.paid"
    assert request.headers["webhook-id"] == event.public_id
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("Hookline/")
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(endpoint.secret).verify(request.body + b" ", request.headers)


def test_a_payload_posted_to_the_api_arrives_as_the_host_wrote_it(worker, receiver):
    """Key order and number spellings that Python floats and jsonb would each change."""
    tenant = TenantFactory()
    EventTypeFactory(name="order.paid")
    endpoint = EndpointFactory(tenant=tenant, url=receiver.url("/as-written"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=tenant, name='k')[1]}")
    payload_text = b'{"b":1,"a":[1e308,6.02214076e23,-0.0,1.10]}'
    raw = b'{"event_type":"order.paid","payload":' + payload_text + b"}"

    response = client.post("/api/v1/events/", raw, content_type="application/json")

    assert response.status_code == 202, response.content
    [request] = receiver.wait_for(1, "/as-written")
    standardwebhooks.Webhook(endpoint.secret).verify(request.body, request.headers)
    event = Event.objects.get(public_id=response.json()["id"])
    assert request.body == (
        b'{"type":"order.paid","timestamp":"' + iso_timestamp(event).encode() + b'","data":'
        + payload_text + b"}"
    )  # fmt: skip


@pytest.mark.pgbouncer
def test_attempt_records_status_duration_and_response_excerpt(worker, receiver):
    tenant = TenantFactory()
    EventTypeFactory(name="order.paid")
    EndpointFactory(tenant=tenant, url=receiver.url("/recorded"))

    event = send_event(tenant, "order.paid", {"n": 1})

    [delivery] = wait_until_finished(event)
    attempt = Attempt.objects.get(delivery=delivery)
    assert delivery.status == Delivery.Status.SUCCEEDED
    assert delivery.attempt_count == 1
    assert delivery.last_response_status == 200
    assert attempt.number == 1
    assert attempt.response_status == 200
    assert 0 < attempt.duration_ms < 5000
    assert attempt.response_body == '{"ok": true}'
    assert attempt.response_headers["content-type"] == "application/json"
    assert attempt.request_headers["webhook-id"] == event.public_id
    assert attempt.error_kind == ""


@pytest.mark.pgbouncer
def test_failing_receiver_is_retried_on_the_same_webhook_id(worker, receiver):
    tenant = TenantFactory()
    EventTypeFactory(name="order.paid")
    EndpointFactory(tenant=tenant, url=receiver.url("/flaky"))
    receiver.script("/flaky", [500, 503])

    event = send_event(tenant, "order.paid", {"n": 1})

    [delivery] = wait_until_finished(event)
    received = receiver.requests("/flaky")
    assert delivery.status == Delivery.Status.SUCCEEDED
    assert [a.response_status for a in delivery.attempts.all()] == [500, 503, 200]
    assert {r.headers["webhook-id"] for r in received} == {event.public_id}
