"""Tracing on, in this process: the emit's span, its event's `traceparent`, and each attempt's
span under it, read from the SDK's in-memory exporter; the worker's side across processes is
tests/deliveries/test_tracing_workers.py."""

from __future__ import annotations

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from config.spans import ATTEMPT_SPAN
from deliveries.batch import deliver_due_batch
from deliveries.models import Attempt, Delivery
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from tests.tracing import finished, traceparent_of
from webhooks import send_event, send_events
from webhooks.errors import UnknownEventTypeError
from webhooks.models import Event
from webhooks.services import event_send_test

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tenant():
    EventTypeFactory(name="order.paid")
    return TenantFactory()


def test_an_emit_is_a_span_under_the_callers_and_its_event_keeps_that_span(traced, tenant):
    with traced.tracer.start_as_current_span("checkout") as caller:
        event = send_event(tenant, "order.paid", {"order_id": "o1"})

    [emit] = finished(traced, "hookline.send_event")
    assert emit.parent.span_id == caller.get_span_context().span_id
    assert emit.context.trace_id == caller.get_span_context().trace_id
    assert emit.kind == SpanKind.PRODUCER
    assert emit.attributes["hookline.event_id"] == event.public_id
    assert emit.attributes["hookline.event_type"] == "order.paid"
    assert emit.attributes["hookline.duplicate"] is False
    assert Event.objects.get(id=event.id).traceparent == traceparent_of(emit)


def test_a_batch_is_one_span_and_every_event_of_it_keeps_that_span(traced, tenant):
    with traced.tracer.start_as_current_span("import"):
        results = send_events(tenant, [("order.paid", {"n": n}) for n in range(3)])

    [emit] = finished(traced, "hookline.send_events")
    assert emit.attributes["hookline.events"] == 3
    assert emit.attributes["hookline.created"] == 3
    stored = Event.objects.filter(public_id__in=[result.event_id for result in results])
    assert set(stored.values_list("traceparent", flat=True)) == {traceparent_of(emit)}


def test_a_refused_emit_ends_its_span_as_an_error_and_stores_nothing(traced, tenant):
    with pytest.raises(UnknownEventTypeError):
        send_event(tenant, "order.refunded", {})

    [emit] = finished(traced, "hookline.send_event")
    assert emit.status.status_code == StatusCode.ERROR
    assert Event.objects.count() == 0


def test_each_attempt_is_a_span_under_its_emit_with_what_came_of_it(
    traced, tenant, receiver, settings
):
    settings.WEBHOOKS_RETRY_SCHEDULE = (0.0,)
    endpoint = EndpointFactory(tenant=tenant, url=receiver.url("/hook"))
    receiver.script("/hook", [503])
    with traced.tracer.start_as_current_span("checkout"):
        event = send_event(tenant, "order.paid", {"order_id": "o1"})

    deliver_due_batch(limit=10)
    deliver_due_batch(limit=10)

    [emit] = finished(traced, "hookline.send_event")
    failed, succeeded = finished(traced, ATTEMPT_SPAN)
    delivery = Delivery.objects.get(event=event)
    for number, span in enumerate((failed, succeeded), start=1):
        assert span.parent.span_id == emit.context.span_id
        assert span.context.trace_id == emit.context.trace_id
        assert span.kind == SpanKind.CLIENT
        assert span.attributes["hookline.delivery_id"] == delivery.id
        assert span.attributes["hookline.endpoint_id"] == endpoint.id
        assert span.attributes["hookline.event_type"] == "order.paid"
        assert span.attributes["hookline.event_id"] == event.public_id
        assert span.attributes["hookline.attempt"] == number
        assert span.attributes["server.address"] == "127.0.0.1"
    assert failed.attributes["http.response.status_code"] == 503
    assert failed.attributes["hookline.error_kind"] == "http_status"
    assert failed.attributes["error.type"] == "503"
    assert failed.attributes["hookline.outcome"] == "retry_scheduled"
    assert failed.status.status_code == StatusCode.ERROR
    assert succeeded.attributes["http.response.status_code"] == 200
    assert "error.type" not in succeeded.attributes
    assert succeeded.attributes["hookline.outcome"] == "succeeded"
    assert succeeded.status.status_code == StatusCode.UNSET


def test_with_traceparent_on_each_attempt_sends_and_stores_its_own_span(
    traced, tenant, receiver, settings
):
    settings.WEBHOOKS_TRACEPARENT = True
    settings.WEBHOOKS_RETRY_SCHEDULE = (0.0,)
    # A custom header of the same name would describe another trace: Hookline's replaces it.
    EndpointFactory(
        tenant=tenant,
        url=receiver.url("/hook"),
        headers={
            "TraceParent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01",
            "X-Shop": "s3cr3t-token",
        },
    )
    receiver.script("/hook", [500])
    send_event(tenant, "order.paid", {"order_id": "o1"})

    deliver_due_batch(limit=10)
    deliver_due_batch(limit=10)

    spans = finished(traced, ATTEMPT_SPAN)
    received = receiver.requests("/hook")
    assert [r.headers["traceparent"] for r in received] == [traceparent_of(s) for s in spans]
    assert "1" * 32 not in str([r.headers for r in received])
    stored = Attempt.objects.order_by("number").values_list("request_headers", flat=True)
    assert [headers["traceparent"] for headers in stored] == [traceparent_of(s) for s in spans]
    assert "s3cr3t-token" not in str(list(stored))  # custom headers are still masked


def test_without_traceparent_on_receivers_get_no_trace_header(traced, tenant, receiver):
    EndpointFactory(tenant=tenant, url=receiver.url("/hook"))
    send_event(tenant, "order.paid", {})

    deliver_due_batch(limit=10)

    assert len(finished(traced, ATTEMPT_SPAN)) == 1
    [request] = receiver.requests("/hook")
    assert "traceparent" not in request.headers


@pytest.mark.parametrize(
    "stored", ["", "00-not-a-trace-context", "00-" + "0" * 32 + "-" + "0" * 16 + "-01"]
)
def test_an_event_without_a_usable_traceparent_is_attempted_in_a_trace_of_its_own(
    traced, tenant, receiver, stored
):
    """Events stored while tracing was off, or by an older release, or with a value that is
    not a trace context: the attempt goes, its span starts a trace."""
    EndpointFactory(tenant=tenant, url=receiver.url("/hook"))
    event = send_event(tenant, "order.paid", {})
    Event.objects.filter(id=event.id).update(traceparent=stored)
    traced.exporter.clear()

    deliver_due_batch(limit=10)

    [span] = finished(traced, ATTEMPT_SPAN)
    assert span.parent is None
    assert Delivery.objects.get(event=event).status == Delivery.Status.SUCCEEDED


def test_a_test_send_is_a_span_and_its_attempt_is_under_it(traced, tenant, receiver):
    endpoint = EndpointFactory(tenant=tenant, url=receiver.url("/hook"))

    delivery = event_send_test(endpoint=endpoint)
    deliver_due_batch(limit=10)

    [emit] = finished(traced, "hookline.send_test_event")
    [attempt] = finished(traced, ATTEMPT_SPAN)
    assert attempt.parent.span_id == emit.context.span_id
    assert attempt.attributes["hookline.trigger"] == "test"
    assert attempt.attributes["hookline.delivery_id"] == delivery.id
