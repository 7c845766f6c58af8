"""Which partitions of attempts to create, and how many days each spans: pure functions."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from deliveries.attempt_partitions import AttemptPartition, partition_span, partitions_planned


@pytest.mark.parametrize(
    ("retention_days", "span"),
    [(1, 1), (30, 1), (59, 1), (60, 2), (90, 3), (365, 12), (3650, 121), (0, 30)],
)
def test_a_partition_spans_a_day_unless_retention_is_long_or_off(retention_days, span):
    assert partition_span(retention_days) == span


def test_planned_partitions_fill_the_gaps_and_never_overlap():
    day = date(2026, 12, 1)
    existing = [AttemptPartition(day, day + timedelta(days=1)),
                AttemptPartition(day + timedelta(days=4), day + timedelta(days=5))]  # fmt: skip
    wanted = {day + timedelta(days=n) for n in range(-1, 7)}

    planned = partitions_planned(existing, wanted, span=2)

    assert planned == [
        AttemptPartition(day - timedelta(days=1), day),  # cut short by the next one
        AttemptPartition(day + timedelta(days=1), day + timedelta(days=3)),
        AttemptPartition(day + timedelta(days=3), day + timedelta(days=4)),
        AttemptPartition(day + timedelta(days=5), day + timedelta(days=7)),
    ]
    assert partitions_planned([*existing, *planned], wanted, span=2) == []
