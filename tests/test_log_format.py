"""Structured logs: LOG_FORMAT=json writes one JSON object a line, the attempt line with its fields;
the default text format stays as it was."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from django.conf import settings

from config.log_format import JsonFormatter
from deliveries.models import Delivery
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from tests.worker import worker_database_url

ROOT = Path(__file__).resolve().parent.parent
DELIVER_ONE = (
    "from webhooks import send_event; from deliveries.batch import deliver_due_batch; "
    "send_event('logs', 'order.paid', {'n': 1}); deliver_due_batch(limit=10)"
)


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": worker_database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        **env,
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture
def endpoint(receiver):
    EventTypeFactory(name="order.paid")
    return EndpointFactory(tenant=TenantFactory(slug="logs"), url=receiver.url("/logs"))


def test_json_formatter_writes_the_record_and_its_extra_fields():
    try:
        raise ValueError("broken")
    except ValueError:
        record = logging.getLogger("hookline.test").makeRecord(
            "hookline.test", logging.WARNING, __file__, 1, "sent %s", ("it",),
            sys.exc_info(), extra={"delivery_id": 7, "status": None},
        )  # fmt: skip

    entry = json.loads(JsonFormatter().format(record))

    assert entry["level"] == "WARNING"
    assert entry["logger"] == "hookline.test"
    assert entry["message"] == "sent it"
    assert (entry["delivery_id"], entry["status"]) == (7, None)
    assert datetime.fromisoformat(entry["timestamp"]).utcoffset().total_seconds() == 0
    assert "ValueError: broken" in entry["exception"]
    assert not {"msg", "args", "levelno"} & set(entry)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_json_logs_carry_each_attempt_as_fields(endpoint, receiver):
    warn = "import warnings; warnings.warn('careful'); "
    result = run_manage("shell", "--no-imports", "-c", warn + DELIVER_ONE, LOG_FORMAT="json")

    assert result.returncode == 0, result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any(e["logger"] == "py.warnings" and "careful" in e["message"] for e in entries)
    attempts = [e for e in entries if e["message"].startswith("attempt delivery=")]
    assert len(attempts) == 1
    attempt = attempts[0]
    delivery = Delivery.objects.get(endpoint=endpoint)
    assert attempt["logger"] == "deliveries.batch"
    assert attempt["level"] == "INFO"
    assert datetime.fromisoformat(attempt["timestamp"])
    assert attempt["delivery_id"] == delivery.id
    assert attempt["endpoint_id"] == endpoint.id
    assert attempt["event_id"] == delivery.event.public_id
    assert attempt["event_type"] == "order.paid"
    assert attempt["status"] == 200
    assert attempt["error_kind"] == ""
    assert attempt["outcome"] == "succeeded"
    assert attempt["duration_ms"] > 0
    assert len(receiver.requests("/logs")) == 1


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_text_logs_keep_the_attempt_line_as_it_was(endpoint, receiver):
    receiver.script("/logs", [500])

    result = run_manage("shell", "--no-imports", "-c", DELIVER_ONE)

    assert result.returncode == 0, result.stderr
    delivery = Delivery.objects.get(endpoint=endpoint)
    expected = (
        f" INFO deliveries.batch attempt delivery={delivery.id} endpoint={endpoint.id} "
        f"event={delivery.event.public_id} number=1 status=500 error=http_status duration_ms="
    )
    assert expected in result.stderr
    assert "{" not in result.stderr


def test_unknown_log_format_fails_loudly():
    result = run_manage("check", LOG_FORMAT="xml")

    assert result.returncode != 0
    assert "LOG_FORMAT must be text or json, not 'xml'" in result.stderr
