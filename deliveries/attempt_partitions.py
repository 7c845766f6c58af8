"""Attempts on PostgreSQL: partitions of a day (or a few), created ahead, dropped whole.

The attempts' table is partitioned by LIST (archived) (migration 0019):

- `<table>_archive` (archived): attempts kept past the retention window for their delivery's
  timeline, blanked (operations.retention moves them there);
- `<table>_live` (not archived), partitioned by RANGE (started_at): `<table>_pYYYYMMDD`, each from
  a UTC day's start to a later one's, and `<table>_default`, which takes any row no other takes.

A partition spans one day with a retention of up to 59 days (`partition_span`); with a longer
retention, or none, it spans more, so that the retained history stays in about 30 partitions:
reading a delivery's attempts looks in every partition, and costs about 2 ms with 40 of them but
about 60 ms with 370. A change of the retention changes the span of new partitions only.

Partitions are created DAYS_AHEAD days ahead by beat (`deliveries.tasks.create_attempt_partitions`),
by every retention run, and by a worker about to store an attempt past the last one it knows of.
An insert never waits for any of them: the default partition takes what no other takes. When a
partition is created, its rows in the default partition move into it in the same transaction
(PostgreSQL refuses to attach a partition whose rows sit in the default one), so a row left
there never stops its partition from being created.

Creating and dropping a partition take locks that every reader of attempts conflicts with for a
moment; both give up after LOCK_TIMEOUT rather than queue the readers behind a long query, and
are tried again on the next run. Other databases keep a plain table: everything here is then a
no-op, and `attempts_partitioned()` says so.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, OperationalError, connection, transaction
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from deliveries.models import Attempt

logger = logging.getLogger(__name__)

# Days created ahead of today: a week without beat still stores every attempt in its partition.
DAYS_AHEAD = 7
# About how many partitions hold the retained history when it is too long for one a day.
RETAINED_PARTITIONS = 30
# The span of a partition when retention is off and history is kept for good.
KEPT_FOR_GOOD_SPAN = 30
# How long creating or dropping a partition waits for the readers of attempts before giving up.
LOCK_TIMEOUT = "2s"
# After a failed attempt to create partitions, a worker stores attempts without trying again for
# this long (they go to the default partition meanwhile).
RETRY_SECONDS = 60.0
LOCK_NOT_AVAILABLE = "55P03"


@dataclass(frozen=True, order=True)
class AttemptPartition:
    """The partition of the attempts that started from `first_day` up to `end_day` (UTC), not
    including `end_day`."""

    first_day: date
    end_day: date

    @property
    def name(self) -> str:
        return f"{_table()}_p{self.first_day:%Y%m%d}"

    @property
    def lower(self) -> datetime:
        return _midnight(self.first_day)

    @property
    def upper(self) -> datetime:
        return _midnight(self.end_day)

    def covers(self, day: date) -> bool:
        return self.first_day <= day < self.end_day


def partition_span(retention_days: int) -> int:
    """How many days a new partition spans, for a retention of `retention_days` (0: kept for
    good): one a day up to 59 days, then about RETAINED_PARTITIONS over the retention."""
    if retention_days <= 0:
        return KEPT_FOR_GOOD_SPAN
    return max(1, retention_days // RETAINED_PARTITIONS)


def partitions_planned(
    existing: Collection[AttemptPartition], days: Collection[date], span: int
) -> list[AttemptPartition]:
    """The partitions to create so that each of `days` has one: each starts at a day that none
    covers and spans `span` days, cut short where the next one starts. Oldest first."""
    taken = sorted(existing)
    planned: list[AttemptPartition] = []
    for day in sorted(days):
        if any(partition.covers(day) for partition in taken):
            continue
        end = min([day + timedelta(days=span), *(p.first_day for p in taken if p.first_day > day)])
        planned.append(AttemptPartition(day, end))
        taken = sorted([*taken, planned[-1]])
    return planned


def attempts_partitioned() -> bool:
    """Whether attempts are stored in partitions: on PostgreSQL, once migrated."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [_table()])
        row = cursor.fetchone()
    return row is not None and row[0] == "p"


def attempt_partitions() -> list[AttemptPartition]:
    """The partitions of attempts that are not archived, oldest first (the default one aside)."""
    with connection.cursor() as cursor:
        return _partitions(cursor)


def attempt_partitions_ensure(
    *, now: datetime | None = None, since: date | None = None, days_ahead: int = DAYS_AHEAD
) -> list[AttemptPartition]:
    """Create partitions for today (UTC, at `now`) and the `days_ahead` days after it, for every
    day from `since` on, and for every day that has rows in the default partition, moving those
    rows into them. Returns the partitions created; none when attempts are not partitioned.

    Safe to run at once from many processes (an advisory lock serialises them). Raises
    OperationalError if the readers of attempts held their locks past LOCK_TIMEOUT: nothing is
    created then, and nothing is lost (inserts go to the default partition meanwhile).
    """
    if not attempts_partitioned():
        return []
    today = _utc_day(now or timezone.now())
    first = min(since, today) if since else today
    wanted = {first + timedelta(days=n) for n in range((today - first).days + days_ahead + 1)}
    span = partition_span(settings.WEBHOOKS_RETENTION_DAYS)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [_table()])
        existing = _partitions(cursor)
        if not partitions_planned(existing, wanted, span) and not _default_has_rows(cursor):
            return []  # the usual case: no lock taken that readers would wait for
        with _lock_timeout(cursor):
            # First: a transaction that has just put rows of a new day in the default partition
            # commits before they are looked for.
            cursor.execute(f"LOCK TABLE {_quoted('default')} IN ACCESS EXCLUSIVE MODE")
            created = partitions_planned(existing, wanted | days_in_default(cursor), span)
            for partition in created:
                _create(cursor, partition)
    if created:
        logger.info("Created attempt partitions %s", ", ".join(p.name for p in created))
    return created


class PartitionInUse(Exception):
    """Readers of attempts held their locks past LOCK_TIMEOUT: try again later."""


def attempt_partition_drop(partition: AttemptPartition) -> int:
    """Drop `partition` with every row in it; returns how many there were. Raises
    PartitionInUse, dropping nothing, when the readers of attempts held their locks past
    LOCK_TIMEOUT: in a caller's transaction, that undoes it too, unless caught inside it."""
    name = connection.ops.quote_name(partition.name)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {name}")  # noqa: S608  # a name of ours
        rows = cursor.fetchone()[0]
        try:
            with transaction.atomic(), _lock_timeout(cursor):
                cursor.execute(f"DROP TABLE {name}")
        except OperationalError as error:
            if _sqlstate(error) != LOCK_NOT_AVAILABLE:
                raise
            raise PartitionInUse(partition.name) from error
    logger.info("Dropped attempt partition %s with %s attempts", partition.name, rows)
    return rows


@dataclass(frozen=True)
class PartitionSize:
    name: str
    rows: int | None  # PostgreSQL's estimate; None until the partition is first analyzed
    bytes: int


def partition_sizes() -> list[PartitionSize]:
    """Every partition of attempts (the days oldest first, then the archive and the default),
    with its estimated rows and its size on disk, indexes included."""
    names = [partition.name for partition in attempt_partitions()]
    names += [f"{_table()}_archive", f"{_table()}_default"]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.reltuples, pg_total_relation_size(c.oid) FROM pg_class c "
            "WHERE c.oid = ANY(ARRAY(SELECT to_regclass(name) FROM unnest(%s::text[]) AS name))",
            [names],
        )
        found = {name: (rows, size) for name, rows, size in cursor.fetchall()}
    return [
        PartitionSize(name, None if found[name][0] < 0 else int(found[name][0]), found[name][1])
        for name in names
        if name in found
    ]


def archive_table() -> str:
    """The partition of archived attempts, quoted."""
    return _quoted("archive")


class _Horizon:
    """How far ahead this process knows attempts have a partition, per database."""

    def __init__(self) -> None:
        self.until: dict[str, datetime] = {}
        self.retry_at: dict[str, float] = {}

    def covers(self, key: str, moment: datetime) -> bool:
        if moment < self.until.get(key, datetime.min.replace(tzinfo=UTC)):
            return True
        return time.monotonic() < self.retry_at.get(key, 0.0)


_horizon = _Horizon()


def attempts_covered(latest: datetime) -> None:
    """Before storing attempts that started up to `latest`: make sure they have a partition.

    Costs nothing while `latest` is before the end of the last partition this process saw. Past
    it, creates the partitions ahead (attempt_partitions_ensure); if that fails, the attempts
    still go in (to the default partition) and this process tries again after RETRY_SECONDS.
    """
    key = connection.settings_dict["NAME"]
    if _horizon.covers(key, latest):
        return
    try:
        # A savepoint: a failure here leaves the caller's transaction usable.
        with transaction.atomic():
            if not attempts_partitioned():
                _horizon.until[key] = datetime.max.replace(tzinfo=UTC)
                return
            attempt_partitions_ensure(now=latest)
            partitions = attempt_partitions()
    except DatabaseError:
        logger.warning("Could not create attempt partitions; trying again later", exc_info=True)
        _horizon.retry_at[key] = time.monotonic() + RETRY_SECONDS
        return
    if partitions:
        _horizon.until[key] = partitions[-1].upper


def _create(cursor: CursorWrapper, partition: AttemptPartition) -> None:
    name = connection.ops.quote_name(partition.name)
    lower, upper = partition.lower.isoformat(), partition.upper.isoformat()
    cursor.execute(
        f"CREATE TABLE {name} (LIKE {_quoted()} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
        "INCLUDING STORAGE)"
    )
    started_at = _started_at()
    cursor.execute(
        f"WITH moved AS (DELETE FROM {_quoted('default')} WHERE {started_at} >= %s "  # noqa: S608
        f"AND {started_at} < %s RETURNING *) INSERT INTO {name} SELECT * FROM moved",
        [partition.lower, partition.upper],
    )
    cursor.execute(
        f"ALTER TABLE {_quoted('live')} ATTACH PARTITION {name} "
        f"FOR VALUES FROM ('{lower}') TO ('{upper}')"
    )


def _partitions(cursor: CursorWrapper) -> list[AttemptPartition]:
    cursor.execute(
        "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)",
        [f"{_table()}_live"],
    )
    partitions = []
    for (bound,) in cursor.fetchall():
        # FOR VALUES FROM ('2026-12-05 00:00:00+00') TO ('2026-12-06 00:00:00+00'), or DEFAULT
        if found := _BOUNDS.search(bound):
            lower, upper = (_utc_day(datetime.fromisoformat(value)) for value in found.groups())
            partitions.append(AttemptPartition(lower, upper))
    return sorted(partitions)


_BOUNDS = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


def _default_has_rows(cursor: CursorWrapper) -> bool:
    cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {_quoted('default')})")  # noqa: S608
    return bool(cursor.fetchone()[0])


def days_in_default(cursor: CursorWrapper) -> set[date]:
    """The UTC days of the rows waiting in the default partition."""
    cursor.execute(
        f"SELECT DISTINCT ({_started_at()} AT TIME ZONE 'UTC')::date "  # noqa: S608
        f"FROM {_quoted('default')}"
    )
    return {row[0] for row in cursor.fetchall()}


@contextlib.contextmanager
def _lock_timeout(cursor: CursorWrapper) -> Iterator[None]:
    """Statements inside give up on a lock after LOCK_TIMEOUT; the transaction's setting is back
    afterwards (it lasts to the end of the transaction otherwise: a test's, say)."""
    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    yield
    cursor.execute("SET LOCAL lock_timeout = DEFAULT")


def _sqlstate(error: DatabaseError) -> str | None:
    return getattr(error.__cause__, "sqlstate", None)


def _table() -> str:
    return Attempt._meta.db_table


def _started_at() -> str:
    return connection.ops.quote_name(str(Attempt._meta.get_field("started_at").column))


def _quoted(part: str = "") -> str:
    return connection.ops.quote_name(f"{_table()}_{part}" if part else _table())


def _utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
