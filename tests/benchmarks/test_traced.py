"""The tracing variant's pieces, without the benchmark's workers: the collector it exports to, the
comparison it prints, and the in-process costs."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link

from benchmarks.delivery import Options
from benchmarks.management.commands.benchmark import Command
from benchmarks.span_sink import SpanSink
from benchmarks.traced import Drained, span_costs, traced_backlogs
from config.spans import ATTEMPT_SPAN


def export_to(endpoint: str, *, attempts: int, compression: Compression | None = None) -> None:
    """What a traced worker sends: attempt spans, each linked to a drain span, over OTLP/HTTP."""
    provider = TracerProvider(shutdown_on_exit=False)  # no exit hook keeps it, and its spans, alive
    exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", compression=compression)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("hookline")
    with tracer.start_as_current_span("run/deliveries.tasks.deliver_due") as drain:
        for n in range(attempts):
            link = Link(drain.get_span_context())
            with tracer.start_as_current_span(ATTEMPT_SPAN, links=[link]) as span:
                span.set_attributes({"hookline.attempt": n + 1, "http.response.status_code": 200})
    provider.shutdown()


@pytest.mark.parametrize("compression", [None, Compression.Gzip])
def test_the_collector_decodes_what_the_sdk_exports(compression):
    with SpanSink(keep=True) as sink:
        export_to(sink.endpoint, attempts=2, compression=compression)

    [drain] = sink.spans("run/deliveries.tasks.deliver_due")
    attempts = sink.spans(ATTEMPT_SPAN)
    assert [span.attributes["hookline.attempt"] for span in attempts] == [1, 2]
    assert {span.parent_span_id for span in attempts} == {drain.span_id}
    assert {link for span in attempts for link in span.links} == {(drain.trace_id, drain.span_id)}
    assert sink.counts == {ATTEMPT_SPAN: 2, "run/deliveries.tasks.deliver_due": 1}


def test_a_collector_that_only_counts_keeps_no_span():
    with SpanSink() as sink:
        export_to(sink.endpoint, attempts=3)

    assert sink.counts[ATTEMPT_SPAN] == 3
    assert sink.spans() == []


def test_the_variant_drains_untraced_then_traced_and_compares_them():
    phases: list[tuple[str, dict[str, str]]] = []

    def drain(name: str, env: dict[str, str]) -> Drained:
        phases.append((name, env))
        if name == "backlog_untraced":
            return Drained(per_s=1000.0, cpu_seconds=2.0, deliveries=5000)
        export_to(env["OTEL_EXPORTER_OTLP_ENDPOINT"], attempts=4)
        return Drained(per_s=900.0, cpu_seconds=2.5, deliveries=5000)

    figures: dict = {}
    traced_backlogs(drain, figures)

    assert [name for name, _ in phases] == ["backlog_untraced", "backlog_traced"]
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in phases[0][1]
    assert phases[1][1]["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://127.0.0.1:")
    assert figures["backlog_traced_vs_untraced_pct"] == 90.0
    assert figures["otel_worker_cpu_us_per_attempt"] == 100.0  # (2.5 - 2.0) s / 5000
    assert figures["otel_attempt_spans_received"] == 4
    assert figures["otel_spans_per_attempt"] == 1.25  # and the drain's own span
    assert figures["otel_attempt_span_us"] > 0


def test_in_process_an_attempts_span_and_an_emits_cost_microseconds():
    costs = span_costs(count=300)

    assert 0 < costs["otel_attempt_span_us"] < 10_000
    assert 0 < costs["otel_emit_span_us"] < 10_000
    assert costs["otel_off_ns_per_attempt"] >= 0


def test_the_otel_flag_reaches_the_inner_process():
    options = Options(events=1, endpoints=1, workers=1, steady_rate=1.0, steady_seconds=1.0)

    assert "--otel" not in Command()._flags(options)
    options.otel = True
    assert Command()._flags(options)[-1] == "--otel"
