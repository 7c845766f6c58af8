"""The list benchmark runs end to end on a small fill (its timings are not asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from tests.worker import worker_database_url

pytestmark = [pytest.mark.services, pytest.mark.django_db]
ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_lists_fills_a_scratch_database_times_every_list_and_drops_it():
    env = {"DATABASE_URL": worker_database_url(), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "manage.py", "benchmark_lists", "--deliveries", "2000",
         "--events", "2000"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip

    assert result.returncode in (0, 1), result.stderr
    assert "Filled 2,000 deliveries" in result.stdout
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["deliveries"] == 2000
    assert {page["page"] for page in summary["pages"]} >= {"admin deliveries", "admin dead letters",
                                                           "dashboard deliveries"}  # fmt: skip
    assert all(page["median_ms"] > 0 for page in summary["pages"])
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_database WHERE datname LIKE '%%_bench_lists'")
        assert cursor.fetchone()[0] == 0
