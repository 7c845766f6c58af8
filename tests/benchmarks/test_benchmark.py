"""The delivery benchmark's correctness counters on small runs (its speed is not asserted)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests.worker import worker_database_url

pytestmark = [pytest.mark.services, pytest.mark.django_db]
ROOT = Path(__file__).resolve().parents[2]
BATCH = 200  # WEBHOOKS_BATCH_SIZE: the in-process batch that counts queries delivers this many


def benchmark(*flags: str, **env: str) -> dict:
    return json.loads(benchmark_output(*flags, **env).strip().splitlines()[-1])


def benchmark_output(*flags: str, **env: str) -> str:
    """What the benchmark printed; its last line is its figures as JSON."""
    env = {"DATABASE_URL": worker_database_url(), "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
           "PATH": "/usr/bin:/bin", **env}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "manage.py", "benchmark", *flags],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["benchmark"] == "delivery"
    return result.stdout


def test_benchmark_delivers_every_event_exactly_once_and_reports_its_figures():
    figures = benchmark("--events", "30", "--endpoints", "2", "--workers", "1",
                        "--steady-rate", "20", "--steady-seconds", "1")  # fmt: skip

    # backlog 30 x 2, the same emitted in batches, burst 30 x 2 and batched, steady 20 x 2, and
    # the batch that counts queries
    assert figures["expected"] == 60 + 60 + 60 + 60 + 40 + BATCH
    assert figures["received"] == figures["expected"]
    assert (figures["lost"], figures["duplicated"], figures["unverified"]) == (0, 0, 0)
    assert figures["raw_ceiling_per_s"] > 0
    assert figures["backlog_per_s"] > 0
    assert figures["end_to_end_per_s"] > 0
    assert figures["batch_emit_ms_per_event"] > 0
    assert figures["backlog_batch_per_s"] > 0
    assert figures["end_to_end_batch_per_s"] > 0
    assert figures["end_to_end_batch_vs_ceiling_pct"] > 0
    assert figures["burst_batch_latency_ms_p99"] >= figures["burst_batch_latency_ms_p50"] > 0
    assert figures["burst_latency_ms_p99"] >= figures["burst_latency_ms_p50"] > 0
    assert figures["steady_latency_ms_p99"] >= figures["steady_latency_ms_p50"] > 0
    assert 0 < figures["queries_per_delivery"] < 1
    assert figures["queries_per_event"] >= 1
    assert figures["worker_cpu_s_per_1000"] > 0
    # The capacity plan's costs per 1,000 deliveries: each phase wrote to the database.
    for phase in ("deliver", "emit", "batch_emit", "end_to_end", "end_to_end_batch"):
        assert figures[f"per_1000_{phase}_wal_bytes"] > 0
        assert figures[f"per_1000_{phase}_database_cpu_s"] >= 0
    assert figures["per_1000_deliver_broker_messages"] >= 0
    assert figures["per_1000_end_to_end_broker_messages"] > 0  # the emits woke the workers


def test_benchmark_with_a_failing_endpoint_keeps_the_others_whole():
    figures = benchmark("--failing-endpoint", "--events", "20", "--workers", "1",
                        "--steady-rate", "20", "--steady-seconds", "1",
                        WEBHOOKS_CIRCUIT_FAILURES="3")  # fmt: skip

    # nine healthy endpoints after the all-healthy first two phases of ten
    assert figures["expected"] == 20 * 10 * 2 + 20 * 9 * 3 + 20 * 9 + BATCH // 9 * 9
    assert figures["received"] == figures["expected"]
    assert (figures["lost"], figures["duplicated"], figures["unverified"]) == (0, 0, 0)
    assert figures["healthy_throughput_kept_pct"] > 0
    # The circuit opened after three failures: the failing endpoint was not sent every event.
    assert 3 <= figures["troubled_endpoint_requests"] < 20


def test_benchmark_with_a_noisy_neighbour_reports_the_quiet_tenant_and_loses_nothing():
    figures = benchmark("--noisy-neighbour", "--prefill", "300", "--events", "20", "--workers",
                        "1", "--steady-rate", "20", "--steady-seconds", "2")  # fmt: skip

    # The quiet tenant's 5 events a second for the 2-second window are counted with the rest.
    assert figures["quiet_events"] == 10
    assert figures["expected"] == 20 * 4 + 40 + BATCH + 10
    assert figures["received"] == figures["expected"]
    assert (figures["lost"], figures["duplicated"], figures["unverified"]) == (0, 0, 0)
    assert figures["noisy_backlog"] == 300
    assert 0 < figures["noisy_delivered_in_window"] <= 300
    assert figures["noisy_duplicated"] == 0
    assert figures["noisy_vs_unshared_pct"] > 0
    assert figures["quiet_latency_ms_p99"] >= figures["quiet_latency_ms_p50"] > 0


def test_benchmark_ordered_keeps_every_key_in_order_and_compares_with_the_unkeyed_backlog():
    # Two workers and a backlog longer than a batch: were a key's deliveries let go together,
    # they would be claimed by both workers at once and arrive out of order.
    output = benchmark_output("--ordered", "3", "--prefill", "300", "--events", "20", "--workers",
                              "2", "--steady-rate", "20", "--steady-seconds", "1")  # fmt: skip
    figures = json.loads(output.strip().splitlines()[-1])

    assert (figures["ordered_keys"], figures["ordered_backlog"]) == (3, 300)
    # backlog and burst, each also batched, steady, the batch that counts queries, and 300 both
    # unkeyed and keyed
    assert figures["expected"] == 20 * 4 + 20 + BATCH + 2 * 300
    assert figures["received"] == figures["expected"]
    assert (figures["lost"], figures["duplicated"], figures["unverified"]) == (0, 0, 0)
    assert (figures["order_violations"], figures["ordered_lost"]) == (0, 0)
    assert figures["unkeyed_backlog_per_s"] > 0
    assert figures["ordered_backlog_per_s"] > 0
    throughput = re.search(
        r"^ordered backlog \(K=3 keys\): ([\d,]+) deliveries/s = (\d+) % of the unkeyed backlog "
        r"\(([\d,]+)/s\)   target with K=100: >= 80 %$", output, re.MULTILINE,
    )  # fmt: skip
    assert throughput is not None, output
    assert int(throughput[1].replace(",", "")) == round(figures["ordered_backlog_per_s"])
    assert "order violations: 0, lost: 0, duplicates: 0 (all share their webhook-id)" in output
    assert "FAIL" not in output
