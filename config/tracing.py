"""The tracing switch: OpenTelemetry when OTEL_EXPORTER_OTLP_ENDPOINT is set, nothing otherwise.

`spans` is None while tracing is off, and nothing here imports OpenTelemetry, so the emit and the
attempts pay one test of a module global: `if tracing.spans is None`. `tracing_start` (run as
Django starts, in every process) turns it on: the SDK's tracer provider exporting over OTLP/HTTP,
and the Django, Celery and psycopg instrumentations (config.tracing_sdk).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from config.spans import Spans

# Read as `tracing.spans` at each use, never imported by name: tracing_start replaces it.
spans: Spans | None = None


def tracing_start() -> None:
    """Turn tracing on in this process if settings.TRACING says so; idempotent.

    Call it before the web server loads its middleware and before the first database connection
    (AppConfig.ready does): the Django instrumentation adds a middleware, and the psycopg one
    wraps connections as they open. Celery's pool processes inherit it when they fork.
    """
    global spans
    if spans is not None or not settings.TRACING:
        return
    from config.spans import Spans
    from config.tracing_sdk import provider_install

    spans = Spans(provider_install())


# A process stopping while the collector is down gives up its last spans after this long.
FLUSH_TIMEOUT_SECONDS = 5.0


def tracing_flush() -> None:
    """Export the spans this process still holds (a pool process about to exit), waiting
    FLUSH_TIMEOUT_SECONDS at most."""
    if spans is not None:
        spans.flush(timeout=FLUSH_TIMEOUT_SECONDS)
