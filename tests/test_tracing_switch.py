"""Tracing's switch: off (the default) loads nothing of OpenTelemetry and runs none of its code on
the emit and the attempts; OTEL_EXPORTER_OTLP_ENDPOINT turns it on; settings that cannot work are
refused at start-up, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from config.spans import Spans
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from tests.worker import worker_database_url
from webhooks.models import Event

ROOT = Path(__file__).resolve().parent.parent
# Started as `celery -A config worker` and the web server start: Django set up, the engine loaded.
START_UP = """
import sys
import django
django.setup()
import config.celery, deliveries.tasks, deliveries.batch, webhooks.services, webhooks.batches
from django.conf import settings
from config import tracing
loaded = sorted(name for name in sys.modules if name.split(".")[0] == "opentelemetry")
middleware = [name for name in settings.MIDDLEWARE if "opentelemetry" in name]
print(type(tracing.spans).__name__, len(loaded), len(middleware))
"""


def start_up(**env: str) -> subprocess.CompletedProcess:
    """Start Django in a fresh process with these variables, and no other OTEL_* ones."""
    clean = {name: value for name, value in os.environ.items()
             if not name.startswith(("OTEL_", "WEBHOOKS_TRACEPARENT"))}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-c", START_UP],
        cwd=ROOT, env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip


def test_off_by_default_no_process_loads_opentelemetry():
    started = start_up()

    assert started.returncode == 0, started.stderr
    assert started.stdout.split() == ["NoneType", "0", "0"]


def test_the_collectors_address_turns_tracing_on_with_the_web_servers_middleware():
    # Nothing listens there: a process starts all the same, and only its exports would fail.
    started = start_up(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")

    assert started.returncode == 0, started.stderr
    spans, loaded, middleware = started.stdout.split()
    assert (spans, middleware) == ("Spans", "1")
    assert int(loaded) > 0


def test_the_sdks_own_off_switch_wins():
    started = start_up(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_SDK_DISABLED="true")

    assert started.returncode == 0, started.stderr
    assert started.stdout.split() == ["NoneType", "0", "0"]


@pytest.mark.parametrize(
    ("env", "refusal"),
    [
        ({"WEBHOOKS_TRACEPARENT": "true"}, "WEBHOOKS_TRACEPARENT=true sends each attempt's span"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
             "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "OTEL_EXPORTER_OTLP_PROTOCOL must be http/protobuf, not 'grpc'",
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT must be"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "WEBHOOKS_TRACEPARENT": "maybe"},
            "WEBHOOKS_TRACEPARENT must be true or false",
        ),
    ],
)  # fmt: skip
def test_settings_that_cannot_work_are_refused_at_start_up(env, refusal):
    started = start_up(**env)

    assert started.returncode != 0
    assert refusal in started.stderr


# Emits and delivers in a fresh process, tracing off: OpenTelemetry code can only run once one of
# its modules is imported, so none loaded at the end means none of its code ran on the way.
EMIT_AND_DELIVER = """
import sys
import django
django.setup()
from deliveries.batch import deliver_due_batch
from subscriptions.models import Tenant
from webhooks import send_event, send_events
tenant = Tenant.objects.get(slug=sys.argv[1])
send_event(tenant, "order.paid", {"n": 1})
send_events(tenant, [("order.paid", {"n": 2})])
delivered = deliver_due_batch(limit=10)
loaded = sorted(name for name in sys.modules if name.split(".")[0] == "opentelemetry")
print(delivered, len(loaded), *loaded[:5])
"""


@pytest.mark.django_db(transaction=True)
def test_off_the_emit_and_the_attempts_run_no_opentelemetry_code(receiver):
    EventTypeFactory(name="order.paid")
    tenant = TenantFactory(slug="untraced")
    EndpointFactory(tenant=tenant, url=receiver.url("/hook"))
    clean = {name: value for name, value in os.environ.items()
             if not name.startswith(("OTEL_", "WEBHOOKS_TRACEPARENT"))}  # fmt: skip
    env = {**clean, "DJANGO_SETTINGS_MODULE": "tests.settings",
           "DATABASE_URL": worker_database_url(), "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
           "REDIS_URL": settings.REDIS_URL}  # fmt: skip

    ran = subprocess.run(
        [sys.executable, "-c", EMIT_AND_DELIVER, tenant.slug],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["2", "0"]
    assert [r.headers.get("traceparent") for r in receiver.requests("/hook")] == [None, None]
    assert set(Event.objects.values_list("traceparent", flat=True)) == {""}


def test_a_stopping_process_waits_for_a_stuck_collector_no_longer_than_its_flush_timeout():
    release = threading.Event()

    class Stuck(SpanExporter):
        def export(self, spans):
            release.wait(10)
            return SpanExportResult.SUCCESS

    provider = TracerProvider(shutdown_on_exit=False)  # no exit hook keeps it, and its spans, alive
    provider.add_span_processor(BatchSpanProcessor(Stuck(), schedule_delay_millis=60_000))
    spans = Spans(provider)
    with spans.emit("hookline.send_event", {}):
        pass

    started = time.monotonic()
    spans.flush(timeout=0.3)
    waited = time.monotonic() - started
    release.set()

    assert 0.3 <= waited < 2
