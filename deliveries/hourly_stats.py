"""Attempts counted per endpoint and hour (`HourlyStat`), in the transaction that records them.

The dashboard's 24-hour figures, its charts and the stats API sum a few of these rows instead of
reading attempts: with tens of millions of attempts stored, counting a day of them through their
deliveries took seconds. A worker adds its batch's counts with one statement, its rows in key
order, so that two workers recording the same endpoint and hour wait for each other but never
deadlock.

Latency is kept as a histogram whose buckets grow by 2 ** (1/8) (about 9 %): hours add up by adding
their buckets, and a percentile read back is the middle of its bucket, within 4.5 % of the exact
figure.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import connection, transaction
from django.db.models import F, QuerySet

from deliveries.claims import Outcome
from deliveries.models import Attempt, Delivery, HourlyStat
from deliveries.retry import Action
from deliveries.sql_names import sql_with_names

STEPS_PER_DOUBLING = 8
# Shorter durations share the first bucket: no receiver answers in under 10 µs.
SHORTEST_MS = 0.01
STATUS_CLASSES = ("status_1xx", "status_2xx", "status_3xx", "status_4xx", "status_5xx")
COUNTS = ("succeeded", "dead", *STATUS_CLASSES, "no_response")


def latency_bucket(duration_ms: float) -> int:
    """The histogram bucket of a duration: bucket n holds [2 ** (n/8), 2 ** ((n+1)/8)) ms."""
    return math.floor(STEPS_PER_DOUBLING * math.log2(max(duration_ms, SHORTEST_MS)))


def bucket_middle_ms(bucket: int) -> float:
    """The geometric middle of a bucket: what a percentile falling in it reads as."""
    return 2 ** ((bucket + 0.5) / STEPS_PER_DOUBLING)


def hour_of(moment: datetime) -> datetime:
    """The start of the UTC hour that holds `moment`."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass
class Tally:
    """Counts over any number of endpoint-hours."""

    succeeded: int = 0
    dead: int = 0
    status_1xx: int = 0
    status_2xx: int = 0
    status_3xx: int = 0
    status_4xx: int = 0
    status_5xx: int = 0
    no_response: int = 0
    latency: Counter[int] = field(default_factory=Counter)

    @property
    def attempts(self) -> int:
        return sum(getattr(self, name) for name in (*STATUS_CLASSES, "no_response"))

    @property
    def failed(self) -> int:
        return self.attempts - self.succeeded

    @property
    def success_rate(self) -> float | None:
        """Attempts answered 2xx, in percent; None without attempts."""
        return 100 * self.succeeded / self.attempts if self.attempts else None

    def count(self, attempt: Attempt, *, gave_up: bool) -> None:
        """Add one recorded attempt; `gave_up` when its delivery was given up on with it."""
        status = attempt.response_status
        if status is not None and 100 <= status < 600:
            name = STATUS_CLASSES[status // 100 - 1]
        else:
            name = "no_response"
        setattr(self, name, getattr(self, name) + 1)
        self.succeeded += attempt.succeeded
        self.dead += gave_up
        self.latency[latency_bucket(attempt.duration_ms)] += 1

    def add(self, row: HourlyStat | Tally) -> None:
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(row, name))
        self.latency.update({int(bucket): n for bucket, n in row.latency.items()})

    def percentile_ms(self, percent: float) -> float | None:
        """The nearest-rank percentile of the durations, as its bucket's middle; None when empty."""
        total = sum(self.latency.values())
        if not total:
            return None
        rank = max(1, math.ceil(percent / 100 * total))
        seen = 0
        for bucket in sorted(self.latency):
            seen += self.latency[bucket]
            if seen >= rank:
                return bucket_middle_ms(bucket)
        raise AssertionError("unreachable: the ranks add up to the total")


def tallies_of(outcomes: Iterable[Outcome]) -> dict[tuple[int, datetime], Tally]:
    """The outcomes' counts by endpoint and hour of the attempt's start."""
    tallies: dict[tuple[int, datetime], Tally] = {}
    for outcome in outcomes:
        key = (outcome.delivery.endpoint_id, hour_of(outcome.attempt.started_at))
        tallies.setdefault(key, Tally()).count(
            outcome.attempt,
            gave_up=outcome.decision.action not in (Action.SUCCEED, Action.RETRY),
        )
    return tallies


def hourly_stats_add(outcomes: Iterable[Outcome]) -> None:
    """Count recorded attempts into their endpoints' hours; call it in the recording transaction,
    last, so that the rows stay locked for as short a time as possible."""
    tallies = tallies_of(outcomes)
    if not tallies:
        return
    if connection.vendor != "postgresql":
        _add_one_by_one(tallies)
        return
    keys = sorted(tallies)
    columns = [[getattr(tallies[key], name) for key in keys] for name in COUNTS]
    latencies = [json.dumps(tallies[key].latency) for key in keys]
    with connection.cursor() as cursor:
        cursor.execute(
            sql_with_names(_ADD_SQL, HourlyStat),
            [[e for e, _ in keys], [h for _, h in keys], *columns, latencies],
        )


_ADD_SQL = (
    "INSERT INTO {HourlyStat.table} AS s ({HourlyStat.endpoint_id}, {HourlyStat.hour}, "
    + ", ".join(f"{{HourlyStat.{name}}}" for name in COUNTS)
    + ", {HourlyStat.latency}) SELECT * FROM unnest(%s::bigint[], %s::timestamptz[], "
    + "%s::integer[], " * len(COUNTS)
    + """%s::jsonb[]) ORDER BY 1, 2
ON CONFLICT ({HourlyStat.endpoint_id}, {HourlyStat.hour}) DO UPDATE SET """
    + ", ".join(
        f"{{HourlyStat.{name}}} = s.{{HourlyStat.{name}}} + EXCLUDED.{{HourlyStat.{name}}}"
        for name in COUNTS
    )  # fmt: skip
    + """, {HourlyStat.latency} = (
    SELECT jsonb_object_agg(bucket, n) FROM (
        SELECT bucket, sum(n::bigint) AS n FROM (
            SELECT * FROM jsonb_each_text(s.{HourlyStat.latency})
            UNION ALL SELECT * FROM jsonb_each_text(EXCLUDED.{HourlyStat.latency})
        ) AS both_hours (bucket, n) GROUP BY bucket
    ) AS merged
)"""
)


def _add_one_by_one(tallies: Mapping[tuple[int, datetime], Tally]) -> None:
    """SQLite: a row at a time (the recording transaction already holds the database's one write
    lock, so nothing changes the rows between reading and writing them)."""
    with transaction.atomic():
        for (endpoint_id, hour), tally in sorted(tallies.items()):
            row, _ = HourlyStat.objects.get_or_create(endpoint_id=endpoint_id, hour=hour)
            merged = Tally()
            merged.add(row)
            merged.add(tally)
            HourlyStat.objects.filter(pk=row.pk).update(
                **{name: F(name) + getattr(tally, name) for name in COUNTS},
                latency={str(bucket): n for bucket, n in merged.latency.items()},
            )


def tally_of(rows: QuerySet[HourlyStat]) -> Tally:
    """The sum of `rows`."""
    tally = Tally()
    for row in rows.only(*COUNTS, "latency"):
        tally.add(row)
    return tally


def tallies_by_endpoint(rows: QuerySet[HourlyStat]) -> dict[int, Tally]:
    """The sum of `rows` for each endpoint."""
    tallies: dict[int, Tally] = {}
    for row in rows.only("endpoint_id", *COUNTS, "latency"):
        tallies.setdefault(row.endpoint_id, Tally()).add(row)
    return tallies


def tallies_by_hour(rows: QuerySet[HourlyStat]) -> dict[datetime, Tally]:
    """The sum of `rows` for each hour."""
    tallies: dict[datetime, Tally] = {}
    for row in rows.only("hour", *COUNTS, "latency"):
        tallies.setdefault(row.hour, Tally()).add(row)
    return tallies


def hourly_stats_rebuild(*, since: datetime) -> int:
    """Count again, from the attempts stored, every hour from the one holding `since` on; returns
    the rows written. For an upgrade, and for history stored without the workers (while workers
    record, an hour being rebuilt would be counted twice or lost). An attempt counts as a dead
    letter where it is the last of a failed delivery."""
    start = hour_of(since)
    with transaction.atomic():
        HourlyStat.objects.filter(hour__gte=start).delete()
        if connection.vendor != "postgresql":
            return _rebuild_one_by_one(start)
        with connection.cursor() as cursor:
            cursor.execute(
                sql_with_names(_REBUILD_SQL, HourlyStat, Attempt, Delivery),
                {"start": start, "steps": STEPS_PER_DOUBLING, "shortest": SHORTEST_MS,
                 "failed": Delivery.Status.FAILED},
            )  # fmt: skip
            return cursor.rowcount


def _class_count(low: int, high: int) -> str:
    status = "a.{Attempt.response_status}"
    return f"count(*) FILTER (WHERE {status} >= {low} AND {status} < {high})"


# Grouped by endpoint, hour and latency bucket in one pass over the attempts, then by endpoint
# and hour, the buckets gathered into the histogram.
_REBUILD_SQL = (
    "INSERT INTO {HourlyStat.table} ({HourlyStat.endpoint_id}, {HourlyStat.hour}, "
    + ", ".join(f"{{HourlyStat.{name}}}" for name in COUNTS)
    + ", {HourlyStat.latency}) SELECT endpoint_id, hour, "
    + ", ".join(f"sum({name})" for name in COUNTS)
    + """, jsonb_object_agg(bucket, n)
FROM (
    SELECT d.{Delivery.endpoint_id} AS endpoint_id,
        date_trunc('hour', a.{Attempt.started_at}, 'UTC') AS hour,
        floor(%(steps)s * ln(greatest(a.{Attempt.duration_ms}, %(shortest)s)) / ln(2))::int
            AS bucket,
        count(*) AS n,
        count(*) FILTER (WHERE a.{Attempt.response_status} >= 200
            AND a.{Attempt.response_status} < 300 AND a.{Attempt.error_kind} = '') AS succeeded,
        count(*) FILTER (WHERE d.{Delivery.status} = %(failed)s
            AND a.{Attempt.number} = d.{Delivery.attempt_count}) AS dead, """
    + ", ".join(f"{_class_count(100 * n, 100 * n + 100)} AS status_{n}xx" for n in range(1, 6))
    + """, count(*) FILTER (WHERE a.{Attempt.response_status} IS NULL
            OR a.{Attempt.response_status} < 100 OR a.{Attempt.response_status} >= 600)
            AS no_response
    FROM {Attempt.table} a JOIN {Delivery.table} d ON d.{Delivery.id} = a.{Attempt.delivery_id}
    WHERE a.{Attempt.started_at} >= %(start)s
    GROUP BY 1, 2, 3
) AS per_bucket
GROUP BY endpoint_id, hour"""
)


def _rebuild_one_by_one(start: datetime) -> int:
    tallies: dict[tuple[int, datetime], Tally] = {}
    attempts = Attempt.objects.filter(started_at__gte=start).select_related("delivery")
    for attempt in attempts.only(
        "response_status", "error_kind", "duration_ms", "started_at", "number",
        "delivery__endpoint_id", "delivery__status", "delivery__attempt_count",
    ).iterator(chunk_size=2000):  # fmt: skip
        delivery = attempt.delivery
        gave_up = (
            delivery.status == Delivery.Status.FAILED and attempt.number == delivery.attempt_count
        )
        key = (delivery.endpoint_id, hour_of(attempt.started_at))
        tallies.setdefault(key, Tally()).count(attempt, gave_up=gave_up)
    _add_one_by_one(tallies)
    return len(tallies)
