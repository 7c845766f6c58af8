"""Retention of attempts stored a day a partition (PostgreSQL): each day goes whole.

A day whose partition ends by the cutoff goes in two moves (operations.retention runs them):

1. Its attempts that must stay are archived, a batch at a time: those of a delivery retention
   keeps (failed, pending, or finished since the cutoff). Archiving blanks what the attempt
   captured, as retention always has, and moves it into the archive partition, which no day
   owns: its number, trigger, time, status and error stay in the delivery's timeline.
2. The partition is dropped with what is left in it, in one statement however many millions of
   rows that is: attempts of succeeded deliveries finished before the cutoff, and of deliveries
   deleted meanwhile.

The cutoff is kept to the day: an attempt goes, or is blanked, once the whole of its UTC day is
older than the cutoff, up to a day later than on a plain table.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet

from deliveries.attempt_partitions import DayPartition, day_partitions
from deliveries.models import Attempt, Delivery
from deliveries.sql_names import sql_with_names

# What an attempt keeps of its request and response once blanked.
BLANK_CAPTURE = {"request_headers": {}, "response_headers": {}, "response_body": ""}


def days_to_purge(before: datetime) -> list[DayPartition]:
    """The day partitions that end by `before`, oldest first."""
    return [day for day in day_partitions() if day.upper <= before]


def kept_attempts_walk(
    day: DayPartition, *, before: datetime, after_id: int, limit: int
) -> list[int]:
    """Up to `limit` ids, in order from past `after_id`, of the attempts in `day` whose delivery
    retention keeps: anything but succeeded and finished before `before`."""
    sql = sql_with_names(_KEPT_SQL, Attempt, Delivery)
    params = {"after": after_id, "limit": limit, "before": before,
              "succeeded": Delivery.Status.SUCCEEDED}  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql.replace("<day>", connection.ops.quote_name(day.name)), params)
        return [row[0] for row in cursor.fetchall()]


# Read from the day's own partition, by its primary key: no other day is looked at.
_KEPT_SQL = """
SELECT a.{Attempt.id} FROM <day> a
JOIN {Delivery.table} d ON d.{Delivery.id} = a.{Attempt.delivery_id}
WHERE a.{Attempt.id} > %(after)s
  AND (d.{Delivery.status} <> %(succeeded)s OR d.{Delivery.finished_at} IS NULL
       OR d.{Delivery.finished_at} >= %(before)s)
ORDER BY a.{Attempt.id} LIMIT %(limit)s
"""


def attempts_archive(day: DayPartition, attempt_ids: list[int]) -> int:
    """Blank these attempts of `day` and move them into the archive; returns how many moved."""
    in_day = Q(started_at__gte=day.lower, started_at__lt=day.upper)
    return (
        Attempt.objects.filter(in_day, id__in=attempt_ids, archived=False)
        .order_by()
        .update(archived=True, **BLANK_CAPTURE)
    )


def attempt_days_count(before: datetime) -> tuple[int, int]:
    """What purging the days that end by `before` would do now: (attempts deleted, attempts
    archived), counting the attempts still waiting for their day in the default partition."""
    # A day ends by `before` when it ends by the start of `before`'s own day.
    first_kept_day = before.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    past = Attempt.objects.filter(archived=False, started_at__lt=first_kept_day)
    kept_delivery = Delivery.objects.filter(id=OuterRef("delivery_id")).exclude(
        status=Delivery.Status.SUCCEEDED, finished_at__lt=before
    )
    archived = past.filter(Exists(kept_delivery)).count()
    return past.count() - archived, archived


def archived_attempts_delete(delivery_ids: list[int]) -> int:
    """Delete the archived attempts of these deliveries; returns how many. Their other attempts
    are left to their day, which drops them with it."""
    attempts = Attempt.objects.filter(archived=True, delivery_id__in=delivery_ids)
    return attempts.delete()[0]


def archived_attempts_count(deliveries: QuerySet[Delivery]) -> int:
    """How many archived attempts these deliveries have."""
    return Attempt.objects.filter(archived=True, delivery__in=deliveries).count()
