"""The delivery benchmark's correctness counters on a small run (its speed is not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests.worker import worker_database_url

pytestmark = [pytest.mark.services, pytest.mark.django_db]
ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_delivers_every_event_exactly_once_and_reports_its_figures():
    env = {"DATABASE_URL": worker_database_url(), "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
           "PATH": "/usr/bin:/bin"}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "manage.py", "benchmark", "--events", "30", "--endpoints", "2",
         "--workers", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["benchmark"] == "delivery"
    assert (figures["received"], figures["lost"], figures["duplicated"]) == (120, 0, 0)
    assert figures["raw_ceiling_per_s"] > 0
    assert figures["backlog_per_s"] > 0
    assert figures["burst_latency_ms_p99"] >= figures["burst_latency_ms_p50"] > 0
