"""The tracing variant (`--otel`): the same backlog drained by fresh workers with tracing off, then
by fresh workers with tracing on, exporting to a collector on 127.0.0.1 (benchmarks.span_sink);
and what one attempt's span, one emit's span and the switch when off cost in this process."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from benchmarks.span_sink import SpanSink
from config import tracing
from config.spans import ATTEMPT_SPAN, Spans
from deliveries.attempt_spans import attempt_traced
from deliveries.claims import Outcome
from deliveries.models import Attempt, Delivery
from deliveries.retry import Action, Decision
from subscriptions.models import Endpoint, EventType
from webhooks.models import Event

_TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@dataclass(frozen=True)
class Drained:
    """A backlog drained by a fresh set of workers, which were then stopped."""

    per_s: float  # deliveries per second
    cpu_seconds: float  # the workers', start to stop
    deliveries: int


# Drains a backlog under a phase name with workers started with these extra variables.
Drain = Callable[[str, dict[str, str]], Drained]


def traced_backlogs(drain: Drain, figures: dict) -> None:
    """Drain the backlog untraced, then traced, each with workers of its own, and compare."""
    with SpanSink() as sink:
        untraced = drain("backlog_untraced", {})
        traced = drain(
            "backlog_traced",
            {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint, "OTEL_SERVICE_NAME": "hookline-bench"},
        )
        attempt_spans = sink.counts[ATTEMPT_SPAN]
        all_spans = sum(sink.counts.values())
    figures["backlog_traced_vs_untraced_pct"] = round(100 * traced.per_s / untraced.per_s, 1)
    extra_cpu = traced.cpu_seconds / traced.deliveries - untraced.cpu_seconds / untraced.deliveries
    figures["otel_worker_cpu_us_per_attempt"] = round(1e6 * extra_cpu, 1)
    # Every attempt of the traced drain, once the workers stopped: fewer means spans were lost.
    figures["otel_attempt_spans_received"] = attempt_spans
    figures["otel_spans_per_attempt"] = round(all_spans / max(attempt_spans, 1), 2)
    figures.update(span_costs())


def span_costs(count: int = 5000) -> dict[str, float]:
    """In this process: microseconds an attempt's span adds to an attempt, and an emit's span to
    an emit (each with its `traceparent`, exported in batches to an exporter that drops them);
    nanoseconds the switch costs an attempt when tracing is off."""
    provider = TracerProvider(shutdown_on_exit=False)  # no exit hook keeps it, and its spans, alive
    provider.add_span_processor(BatchSpanProcessor(_Dropped()))
    spans = Spans(provider)
    delivery, outcome = _delivery_and_outcome()

    def send(delivery: Delivery, traceparent: str) -> Outcome:
        return outcome

    try:
        attempt = _per_call(lambda: attempt_traced(spans, delivery, send), count)
        emit = _per_call(lambda: _emit(spans), count)
    finally:
        provider.shutdown()
    off = _per_call(lambda: _as_when_off(delivery, send), count * 20) - _per_call(
        lambda: send(delivery, ""), count * 20
    )
    return {
        "otel_attempt_span_us": round(1e6 * attempt, 2),
        "otel_emit_span_us": round(1e6 * emit, 2),
        "otel_off_ns_per_attempt": round(1e9 * max(off, 0.0), 1),
    }


def _as_when_off(delivery: Delivery, send: Callable[[Delivery, str], Outcome]) -> Outcome:
    """What `Sends.send` does before an attempt when tracing is off."""
    spans = tracing.spans
    if spans is None:
        return send(delivery, "")
    return attempt_traced(spans, delivery, send)


def _emit(spans: Spans) -> str:
    with spans.emit("hookline.send_event", {"hookline.tenant": "bench"}) as span:
        return spans.traceparent(span)


def _per_call(call: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        call()
    return (time.perf_counter() - started) / count


def _delivery_and_outcome() -> tuple[Delivery, Outcome]:
    """An attempt as the worker holds it, built in memory (nothing is stored)."""
    endpoint = Endpoint(id=1, tenant_id=1, url="https://receiver.example/hook")
    event = Event(id=1, public_id="msg_bench", traceparent=_TRACEPARENT)
    event.event_type = EventType(id=1, name="order.paid")
    delivery = Delivery(id=1, event=event, endpoint=endpoint, attempt_count=0)
    attempt = Attempt(delivery=delivery, number=1, response_status=200)
    return delivery, Outcome(delivery=delivery, attempt=attempt, decision=Decision(Action.SUCCEED))


class _Dropped(SpanExporter):
    """Takes spans and keeps none: the cost measured is Hookline's side, not a network's."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS
