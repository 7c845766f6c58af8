"""Tracing turned on in the test process (the `traced` fixture), with the spans kept in the SDK's
in-memory exporter."""

from __future__ import annotations

from types import SimpleNamespace

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from config import tracing
from config.spans import Spans


def traced_in_memory(monkeypatch) -> SimpleNamespace:
    """Tracing on, as `tracing_start` turns it on, with spans kept in memory: `exporter` holds
    them, `tracer` starts the host application's own."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)  # no exit hook keeps it, and its spans, alive
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "spans", Spans(provider))
    return SimpleNamespace(exporter=exporter, tracer=provider.get_tracer("the host application"))


def finished(traced: SimpleNamespace, name: str) -> list[ReadableSpan]:
    return [span for span in traced.exporter.get_finished_spans() if span.name == name]


def traceparent_of(span: ReadableSpan) -> str:
    context = span.context
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
