"""The history variant's pieces on a small fill, without the benchmark's workers (its speed is
not asserted: `manage.py benchmark --history 10000000` measures it)."""

from __future__ import annotations

import pytest
from django.db import connection

from benchmarks.delivery import Options
from benchmarks.history import (
    ATTEMPTS_PER_DELIVERY,
    HISTORY_DAYS,
    history_day_purge,
    history_fill,
    history_pages,
    partitioned_capacity,
)
from benchmarks.management.commands.benchmark import Command
from deliveries.attempt_partitions import attempt_partitions, attempts_partitioned
from deliveries.models import Attempt, Delivery, HourlyStat

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def rows_in(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{table}"')  # noqa: S608
        return cursor.fetchone()[0]


def test_the_history_is_filled_timed_and_its_old_day_purged():
    history = history_fill(attempts=24_000)

    # Half on the old day, the rest over the days since (rounded to whole events), and the due
    # deliveries for the claim.
    old = rows_in(history.old_day.name)
    assert old == 12_000
    assert 11_000 < history.attempts - old <= 12_000
    assert history.old_day in attempt_partitions()
    on_old_day = Delivery.objects.filter(attempts__started_at__lt=history.old_day.upper).distinct()
    assert on_old_day.count() == 12_000 // ATTEMPTS_PER_DELIVERY
    kept = on_old_day.exclude(status=Delivery.Status.SUCCEEDED).count()
    assert 0 < kept < on_old_day.count() // 50  # dead letters and pending ones: 1.5 %
    assert history.fill_seconds > 0
    # Counted by the hour, as an upgrade counts them: every attempt, once.
    counted = sum(row.attempts for row in HourlyStat.objects.all())
    assert counted == history.attempts

    pages = history_pages(history)

    assert len(pages) == 12
    assert all(row["median_ms"] > 0 for row in pages)
    assert pages[-1]["page"] == "claim of 100 due deliveries"

    figures = history_day_purge(history)

    assert history.old_day not in attempt_partitions()
    assert figures["history_day_attempts"] == 12_000
    assert figures["history_day_archived"] == kept * ATTEMPTS_PER_DELIVERY
    assert Attempt.objects.filter(archived=True).count() == kept * ATTEMPTS_PER_DELIVERY
    assert figures["history_day_purge_s"] > 0
    assert HISTORY_DAYS == 30


def test_capacity_is_measured_partitioned_plain_then_partitioned_again():
    seen = []

    def backlog(name: str) -> float:
        seen.append((name, attempts_partitioned()))
        return {"backlog_partitioned": 96.0, "backlog_plain": 100.0}.get(name, 98.0)

    figures: dict = {}
    partitioned_capacity(backlog, figures)

    assert seen == [
        ("backlog_partitioned", True),
        ("backlog_plain", False),
        ("backlog_partitioned_again", True),
    ]
    assert figures["partitioned_vs_plain_pct"] == 97.0
    assert attempts_partitioned()


def test_the_history_flag_reaches_the_inner_process():
    options = Options(events=1, endpoints=1, workers=1, steady_rate=1.0, steady_seconds=1.0)
    options.history = 5_000_000

    flags = Command()._flags(options)

    assert flags[flags.index("--history") + 1] == "5000000"
