"""Traces across processes: this process emits inside a span of its own; a real Celery worker,
with tracing on, attempts the deliveries and exports its spans over OTLP/HTTP to a collector on
127.0.0.1 (benchmarks.span_sink), which decodes them. One trace holds the caller, the emit and
every attempt, and each receiver is sent the span of the attempt that reached it. The worker's
processes hold their spans until they stop, and send them then."""

from __future__ import annotations

import time

import pytest

from benchmarks.span_sink import ReceivedSpan, SpanSink
from config.spans import ATTEMPT_SPAN
from deliveries.models import Delivery
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from tests.tracing import finished
from webhooks import send_event, send_events

pytestmark = [pytest.mark.services]

DRAIN_SPAN = "run/deliveries.tasks.deliver_due"  # the Celery instrumentation's name for a run


@pytest.fixture
def sink():
    with SpanSink(keep=True) as collector:
        yield collector


@pytest.fixture
def traced_worker(sink, start_worker):  # the collector outlives the worker
    return start_worker(
        OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint,
        # No export on a timer during a test: the spans reach the collector only because each
        # process sends what it holds as it stops.
        OTEL_BSP_SCHEDULE_DELAY="600000",
        WEBHOOKS_TRACEPARENT="true",
    )


def finished_deliveries(count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    done = Delivery.objects.exclude(status=Delivery.Status.PENDING)
    while done.count() < count:
        assert time.monotonic() < deadline, f"{done.count()} of {count} deliveries finished"
        time.sleep(0.05)


def traceparent_sent(span: ReceivedSpan) -> str:
    return f"00-{span.trace_id}-{span.span_id}-"


def test_a_worker_continues_each_emits_trace_into_every_attempt_and_links_its_drains(
    traced_worker, traced, sink, receiver
):
    EventTypeFactory(name="order.paid")
    shop, importer = TenantFactory(), TenantFactory()
    endpoint = EndpointFactory(tenant=shop, url=receiver.url("/hook"))
    EndpointFactory(tenant=importer, url=receiver.url("/batch"))
    receiver.script("/hook", [500])

    with traced.tracer.start_as_current_span("checkout") as caller:
        event = send_event(shop, "order.paid", {"order_id": "o1"})
    with traced.tracer.start_as_current_span("import"):
        send_events(importer, [("order.paid", {"n": n}) for n in range(3)])
    finished_deliveries(4)
    traced_worker.stop()

    # The single emit: both attempts under it, in the caller's trace, with what came of each.
    [emit] = finished(traced, "hookline.send_event")
    attempts = sink.spans(ATTEMPT_SPAN)
    emitted = f"{emit.context.span_id:016x}"
    first, second = sorted(
        (span for span in attempts if span.parent_span_id == emitted),
        key=lambda span: span.attributes["hookline.attempt"],
    )
    trace_id = f"{caller.get_span_context().trace_id:032x}"
    delivery = Delivery.objects.get(event=event)
    for number, span in enumerate((first, second), start=1):
        assert span.trace_id == trace_id
        assert span.service == "hookline"
        assert span.attributes["hookline.attempt"] == number
        assert span.attributes["hookline.delivery_id"] == delivery.id
        assert span.attributes["hookline.endpoint_id"] == endpoint.id
        assert span.attributes["hookline.event_type"] == "order.paid"
    assert (first.attributes["http.response.status_code"], first.failed) == (500, True)
    assert first.attributes["hookline.error_kind"] == "http_status"
    assert (second.attributes["http.response.status_code"], second.failed) == (200, False)
    sent = [request.headers["traceparent"] for request in receiver.requests("/hook")]
    assert [header[:-2] for header in sent] == [traceparent_sent(first), traceparent_sent(second)]

    # The batch: its three attempts under its one span.
    [batch] = finished(traced, "hookline.send_events")
    under_batch = f"{batch.context.span_id:016x}"
    assert len([span for span in attempts if span.parent_span_id == under_batch]) == 3
    assert len(attempts) == 5

    # The worker's side: each attempt links to the drain that sent it, whose queries are traced.
    drains = {(span.trace_id, span.span_id) for span in sink.spans(DRAIN_SPAN)}
    for attempt in attempts:
        assert set(attempt.links) & drains, "an attempt links to the drain that sent it"
    queries = [span for span in sink.spans() if span.attributes.get("db.system") == "postgresql"]
    assert any("deliveries_delivery" in str(span.attributes) for span in queries)
