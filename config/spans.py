"""Hookline's own spans: each emit, and each attempt as a child of its event's emit.

An attempt happens later than its emit, in another process, in a batch that a worker claimed from
the database rather than in a task per event: no message carries the emit's context there. So the
emit's span context is stored with the event as a W3C `traceparent` (Event.traceparent), and the
worker starts each attempt's span under it. Imported only when tracing is on (config.tracing).
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

TRACER_NAME = "hookline"
ATTEMPT_SPAN = "hookline.attempt"

_propagator = TraceContextTextMapPropagator()


class Spans:
    """Starts Hookline's spans with the tracer of one provider."""

    def __init__(self, provider: trace.TracerProvider) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer(TRACER_NAME)

    def emit(self, name: str, attributes: Attributes) -> AbstractContextManager[Span]:
        """The span of an emit, current while it runs: a child of the caller's current span (a
        request's, or the host application's own), so the events it stores join that trace.
        An exception ends it as an error."""
        return self._tracer.start_as_current_span(
            name, kind=SpanKind.PRODUCER, attributes=attributes
        )

    def attempt(self, traceparent: str, attributes: Attributes) -> AbstractContextManager[Span]:
        """The span of one attempt, a child of the emit that `traceparent` names (a trace of its
        own without one), and linked to the span the worker is in (its batch's task)."""
        current = trace.get_current_span().get_span_context()
        return self._tracer.start_as_current_span(
            ATTEMPT_SPAN,
            context=_context_of(traceparent),
            kind=SpanKind.CLIENT,
            attributes=attributes,
            links=[Link(current)] if current.is_valid else None,
        )

    @staticmethod
    def ended(span: Span, attributes: Attributes, *, error: str) -> None:
        """Set what came of an attempt; a non-empty `error` marks the span failed with it."""
        span.set_attributes(attributes or {})
        if error:
            span.set_status(Status(StatusCode.ERROR, error))

    @staticmethod
    def traceparent(span: Span) -> str:
        """The span's W3C `traceparent`; "" for a span that is not valid (tracing suppressed)."""
        carrier: dict[str, str] = {}
        _propagator.inject(carrier, context=trace.set_span_in_context(span))
        return carrier.get("traceparent", "")

    def flush(self, *, timeout: float) -> None:
        """Export what the provider still holds, waiting `timeout` seconds at most: the SDK's
        flush ignores its own timeout, and retries an unreachable collector for each batch."""
        force_flush = getattr(self._provider, "force_flush", None)
        if force_flush is None:
            return
        flushing = threading.Thread(target=force_flush, name="hookline-span-flush", daemon=True)
        flushing.start()
        flushing.join(timeout)


def _context_of(traceparent: str) -> Context:
    """The context a stored `traceparent` names; an empty one (a new trace) for "" or a value
    that is not one: the attempt goes on regardless."""
    if not traceparent:
        return Context()
    return _propagator.extract({"traceparent": traceparent})
