"""The PgBouncer variant's pieces (`benchmark --pgbouncer`), without running the benchmark."""

from __future__ import annotations

import re

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from benchmarks.management.commands.benchmark import _pgbouncer
from benchmarks.pooled import pooled_figures, pooled_report
from tests.pooling import require_pgbouncer
from tests.worker import worker_database_url

DIRECT = {"benchmark": "delivery", "backlog_per_s": 400.0, "burst_latency_ms_p99": 20.0,
          "end_to_end_per_s": 0, "lost": 0, "duplicated": 0, "unverified": 0}  # fmt: skip
POOLED = {"benchmark": "delivery", "backlog_per_s": 380.0, "burst_latency_ms_p99": 25.0,
          "end_to_end_per_s": 300.0, "lost": 0, "duplicated": 2, "unverified": 0}  # fmt: skip


def test_both_runs_figures_are_kept_and_the_pooled_ones_given_as_a_share_of_the_direct():
    figures = pooled_figures(DIRECT, POOLED)

    assert figures["backlog_per_s"] == 400.0
    assert figures["pgbouncer_backlog_per_s"] == 380.0
    assert figures["backlog_per_s_pgbouncer_vs_direct_pct"] == 95.0
    assert figures["burst_latency_ms_p99_pgbouncer_vs_direct_pct"] == 125.0
    # No ratio to a figure of zero, and none for figures that are not compared.
    assert "end_to_end_per_s_pgbouncer_vs_direct_pct" not in figures
    assert "duplicated_pgbouncer_vs_direct_pct" not in figures
    assert "benchmark" not in figures
    assert "pgbouncer_benchmark" not in figures


def test_the_report_has_a_line_per_compared_figure_and_says_what_either_run_lost():
    lines = pooled_report(
        {**pooled_figures(DIRECT, POOLED), "pgbouncer_process_cpu_s_per_1000": 1.5}
    )

    assert any(re.fullmatch(r"backlog_per_s +400\.0 +380\.0 +95\.0 %", line) for line in lines)
    assert not any(line.startswith("end_to_end_per_s") for line in lines)
    assert "PgBouncer's own processor time: 1.5 s per 1,000 deliveries" in lines
    assert lines[-1] == (
        "direct / through PgBouncer: lost 0 / 0, duplicated 0 / 2, unverified 0 / 0"
    )


def test_the_direct_run_gets_no_pgbouncer():
    with _pgbouncer("postgres://postgres@127.0.0.1:5432/bench", "direct") as bouncer:
        assert bouncer is None


@pytest.mark.services
@pytest.mark.django_db
def test_the_pooled_run_reaches_its_database_through_a_pgbouncer_in_transaction_mode():
    require_pgbouncer()
    url = worker_database_url()
    database = url.rsplit("/", 1)[1]

    with _pgbouncer(url, "pgbouncer") as bouncer:
        assert bouncer is not None
        with psycopg.connect(bouncer.url(database)) as pooled:
            assert pooled.info.port == bouncer.port
            assert pooled.execute("SELECT current_database()").fetchone() == (database,)
        config = {row["key"]: row["value"] for row in bouncer.show("CONFIG")}
        assert config["pool_mode"] == "transaction"
        assert config["server_round_robin"] == "0"  # as in production: last freed, first reused


@pytest.mark.services
def test_the_benchmark_refuses_to_run_behind_a_pool_of_the_callers(settings):
    settings.DATABASE_POOL_URL = "postgres://hookline@127.0.0.1:6432/hookline"

    with pytest.raises(CommandError, match="without DATABASE_POOL_URL"):
        call_command("benchmark", "--pgbouncer")
