"""Transformed bodies on the wire: what receivers get, what they verify, and failed runs."""

from __future__ import annotations

import json
import time

import pytest
import standardwebhooks

from deliveries.batch import deliver_due_batch
from deliveries.models import Attempt, Delivery
from deliveries.services import deliveries_replay
from subscriptions.models import VERIFICATION_EVENT_TYPE, Endpoint
from subscriptions.services import endpoint_create
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event
from webhooks.models import Event
from webhooks.services import event_send_test
from webhooks.wire import iso_timestamp

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = '{"text": "Order " & data.order_id & " paid"}'
RUNAWAY = "($f := function($n) { $f($n + 1) }; $f(0))"
# A run is stopped after 80 ms of processor time (tests/webhooks/test_transformations.py holds it
# to that); the wall-clock time an attempt records may be longer on a loaded machine.
NEVER_HANGS_MS = 1000


@pytest.fixture
def tenant():
    EventTypeFactory(name="order.paid")
    return TenantFactory()


def received_by_standard_webhooks(endpoint: Endpoint, request) -> object:
    """What a receiver using the `standardwebhooks` package reads, once it verified the request."""
    return standardwebhooks.Webhook(endpoint.secret).verify(request.body, request.headers)


def test_a_receiver_gets_the_transformed_body_and_verifies_its_signature(tenant, receiver):
    endpoint = EndpointFactory(tenant=tenant, url=receiver.url("/chat"), transformation=CHAT)
    event = send_event(tenant, "order.paid", {"order_id": "ord_1", "amount": 4200})

    assert deliver_due_batch(limit=10) == 1

    [request] = receiver.requests("/chat")
    assert request.body == b'{"text":"Order ord_1 paid"}'
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == event.public_id
    assert received_by_standard_webhooks(endpoint, request) == {"text": "Order ord_1 paid"}
    assert Delivery.objects.get(event=event).status == Delivery.Status.SUCCEEDED


@pytest.mark.parametrize(
    ("payload_format", "content_type", "body"),
    [
        (
            "xml",
            "application/xml; charset=utf-8",
            b'<?xml version="1.0" encoding="UTF-8"?>\n<webhook><text>Order ord_1 paid</text>'
            b'<amount type="number">42</amount></webhook>',
        ),
        ("form", "application/x-www-form-urlencoded", b"text=Order+ord_1+paid&amount=42"),
    ],
)
def test_the_payload_format_applies_after_the_transformation(
    tenant, receiver, payload_format, content_type, body
):
    transformation = '{"text": "Order " & data.order_id & " paid", "amount": data.amount / 100}'
    endpoint = EndpointFactory(
        tenant=tenant,
        url=receiver.url("/shaped"),
        payload_format=payload_format,
        transformation=transformation,
    )
    send_event(tenant, "order.paid", {"order_id": "ord_1", "amount": 4200})

    deliver_due_batch(limit=10)

    [request] = receiver.requests("/shaped")
    assert request.body == body
    assert request.headers["content-type"] == content_type
    webhook = standardwebhooks.Webhook(endpoint.secret)
    assert webhook.verify(request.body, request.headers, json_parse=False) is None
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        webhook.verify(body.replace(b"ord_1", b"ord_2"), request.headers, json_parse=False)


def test_one_event_gets_each_endpoints_own_shape_in_one_batch(tenant, receiver):
    plain = EndpointFactory(tenant=tenant, url=receiver.url("/plain"))
    chat = EndpointFactory(tenant=tenant, url=receiver.url("/chat"), transformation=CHAT)
    form = EndpointFactory(
        tenant=tenant, url=receiver.url("/form"), transformation=CHAT, payload_format="form"
    )
    event = send_event(tenant, "order.paid", {"order_id": "ord_7"})

    assert deliver_due_batch(limit=10) == 3

    [to_plain] = receiver.requests("/plain")
    assert received_by_standard_webhooks(plain, to_plain) == {
        "type": "order.paid",
        "timestamp": iso_timestamp(event),
        "data": {"order_id": "ord_7"},
    }
    [to_chat] = receiver.requests("/chat")
    assert received_by_standard_webhooks(chat, to_chat) == {"text": "Order ord_7 paid"}
    [to_form] = receiver.requests("/form")
    assert to_form.body == b"text=Order+ord_7+paid"
    assert form.transformation == CHAT


def test_a_test_event_is_transformed_too(tenant, receiver):
    endpoint = EndpointFactory(
        tenant=tenant, url=receiver.url("/chat"), transformation='{"text": data.message}'
    )

    event_send_test(endpoint=endpoint)
    deliver_due_batch(limit=10)

    [request] = receiver.requests("/chat")
    assert received_by_standard_webhooks(endpoint, request) == {
        "text": "A test message from Hookline."
    }


def test_a_verification_challenge_is_sent_as_hookline_builds_it(tenant, receiver, settings):
    settings.WEBHOOKS_VERIFY_ENDPOINTS = True
    endpoint = endpoint_create(tenant=tenant, url=receiver.url("/chat"))
    Endpoint.objects.filter(id=endpoint.id).update(
        transformation=CHAT, payload_format=Endpoint.PayloadFormat.XML
    )
    endpoint.refresh_from_db()

    deliver_due_batch(limit=10)

    [request] = receiver.requests("/chat")
    assert received_by_standard_webhooks(endpoint, request) == {
        "type": VERIFICATION_EVENT_TYPE,
        "timestamp": iso_timestamp(Event.objects.get(event_type__name=VERIFICATION_EVENT_TYPE)),
        "data": {"challenge": endpoint.verification_challenge},
    }


def test_a_failed_transformation_sends_nothing_and_is_retried(tenant, receiver, settings):
    settings.WEBHOOKS_RETRY_SCHEDULE = (60.0, 600.0)
    EndpointFactory(tenant=tenant, url=receiver.url("/hook"), transformation="data.missing")
    event = send_event(tenant, "order.paid", {"order_id": "ord_1"})

    deliver_due_batch(limit=10)

    assert receiver.requests() == []
    delivery = Delivery.objects.get(event=event)
    assert delivery.status == Delivery.Status.PENDING
    assert delivery.attempt_count == 1
    assert delivery.next_attempt_at is not None
    [attempt] = delivery.attempts.all()
    assert attempt.error_kind == Attempt.ErrorKind.TRANSFORM
    assert attempt.response_status is None
    assert attempt.request_headers == {}
    assert "gave no result (undefined)" in attempt.error_message
    assert "gave no result" in delivery.last_error


def test_fixing_the_transformation_and_replaying_recovers_a_dead_delivery(
    tenant, receiver, settings
):
    settings.WEBHOOKS_RETRY_SCHEDULE = ()
    endpoint = EndpointFactory(tenant=tenant, url=receiver.url("/chat"), transformation=RUNAWAY)
    event = send_event(tenant, "order.paid", {"order_id": "ord_9"})
    deliver_due_batch(limit=10)
    delivery = Delivery.objects.get(event=event)
    assert delivery.status == Delivery.Status.FAILED  # the dead-letter queue
    assert receiver.requests() == []

    Endpoint.objects.filter(id=endpoint.id).update(transformation=CHAT)
    deliveries_replay(deliveries=Delivery.objects.filter(id=delivery.id))
    deliver_due_batch(limit=10)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SUCCEEDED
    [request] = receiver.requests("/chat")
    assert received_by_standard_webhooks(endpoint, request) == {"text": "Order ord_9 paid"}
    assert request.headers["webhook-id"] == event.public_id
    assert [a.error_kind for a in delivery.attempts.order_by("number")] == ["transform", ""]


def test_a_runaway_transformation_is_stopped_in_time_and_the_batch_goes_on(tenant, receiver):
    EndpointFactory(tenant=tenant, url=receiver.url("/runaway"), transformation=RUNAWAY)
    EndpointFactory(tenant=tenant, url=receiver.url("/healthy"), transformation=CHAT)
    events = [send_event(tenant, "order.paid", {"order_id": f"o{n}"}) for n in range(3)]
    started = time.monotonic()

    assert deliver_due_batch(limit=10) == 6

    # Three runaway runs of at most 100 ms of processor time each, and the healthy sends.
    assert time.monotonic() - started < 3 * 0.1 + 1.5
    assert len(receiver.requests("/healthy")) == 3
    assert receiver.requests("/runaway") == []
    stopped = Attempt.objects.filter(delivery__endpoint__url=receiver.url("/runaway"))
    assert stopped.count() == len(events)
    for attempt in stopped:
        assert attempt.error_kind == Attempt.ErrorKind.TRANSFORM
        assert "80 ms budget and was stopped" in attempt.error_message
        assert 80 <= attempt.duration_ms < NEVER_HANGS_MS


def test_endpoints_sharing_a_runaway_transformation_run_it_once_per_event(tenant, receiver):
    for path in ("/a", "/b", "/c"):
        EndpointFactory(tenant=tenant, url=receiver.url(path), transformation=RUNAWAY)
    send_event(tenant, "order.paid", {"order_id": "o1"})
    started = time.monotonic()

    assert deliver_due_batch(limit=10) == 3

    assert time.monotonic() - started < NEVER_HANGS_MS / 1000
    durations = sorted(a.duration_ms for a in Attempt.objects.all())
    # One run, its result kept for the batch: the other two attempts took no time.
    assert durations[1] < 5
    assert durations[2] >= 80


def test_a_real_worker_stops_a_runaway_and_keeps_delivering_to_other_endpoints(
    start_worker, tenant, receiver
):
    runaway = EndpointFactory(tenant=tenant, url=receiver.url("/runaway"), transformation=RUNAWAY)
    EndpointFactory(tenant=tenant, url=receiver.url("/healthy"), transformation=CHAT)
    start_worker()
    started = time.monotonic()

    for number in range(20):
        send_event(tenant, "order.paid", {"order_id": f"o{number}"})
        time.sleep(0.05)  # events keep coming while the runaway is tried
    healthy = receiver.wait_for(20, "/healthy", timeout=30)

    assert sorted(json.loads(r.body)["text"] for r in healthy) == sorted(
        f"Order o{number} paid" for number in range(20)
    )
    took = time.monotonic() - started
    assert took < 10, f"the healthy endpoint got its 20 events after {took:.1f} s"
    assert receiver.requests("/runaway") == []
    stopped = Attempt.objects.filter(delivery__endpoint=runaway)
    assert stopped.exists()
    for attempt in stopped:
        assert attempt.error_kind == Attempt.ErrorKind.TRANSFORM
        assert attempt.duration_ms < NEVER_HANGS_MS, attempt.duration_ms
    assert not Delivery.objects.filter(endpoint=runaway, status=Delivery.Status.SUCCEEDED).exists()
