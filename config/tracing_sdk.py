"""OpenTelemetry's SDK as Hookline sets it up: one tracer provider per process, exporting over
OTLP/HTTP in batches, and the Django, Celery and psycopg instrumentations.

Imported only when tracing is on (config.tracing). The exporter and the sampler read
OpenTelemetry's own environment variables (OTEL_EXPORTER_OTLP_ENDPOINT, _HEADERS, _TIMEOUT,
OTEL_TRACES_SAMPLER, OTEL_BSP_*, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES).
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

SERVICE = "hookline"
# Probes and scrapes would be most of the web server's traces, and tell nothing.
EXCLUDED_URLS = "/healthz,/metrics"


def provider_install() -> TracerProvider:
    """The process's tracer provider, with the instrumentations on.

    A host application that set up an SDK provider of its own (Hookline running inside it) keeps
    it, and Hookline's spans go where its other spans go; otherwise Hookline installs one that
    exports to OTEL_EXPORTER_OTLP_ENDPOINT. The batch exporter's thread is started again in each
    process that Celery's pool forks (the SDK does it at fork).
    """
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(resource=_resource())
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
    _instrument(provider)
    return provider


def _resource() -> Resource:
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: SERVICE}))
    return resource


def _instrument(provider: TracerProvider) -> None:
    excluded = (
        os.environ.get("OTEL_PYTHON_DJANGO_EXCLUDED_URLS")
        or os.environ.get("OTEL_PYTHON_EXCLUDED_URLS")
        or EXCLUDED_URLS
    )
    DjangoInstrumentor().instrument(tracer_provider=provider, excluded_urls=excluded)
    # A wake-up does not make the worker's drain part of the waker's trace: one drain sends the
    # events of many traces, so its span links to the wake-up instead of being its child.
    CeleryInstrumentor().instrument(tracer_provider=provider, use_span_links=True)
    PsycopgInstrumentor().instrument(tracer_provider=provider)
