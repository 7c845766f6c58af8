"""Retention: what Hookline deletes once it is older than WEBHOOKS_RETENTION_DAYS.

`retention_purge` (run by the beat task `deliveries.tasks.purge_expired` and by
`manage.py purge`) removes, for a cutoff T:

- succeeded deliveries finished before T, with their attempts (on PostgreSQL, attempts are stored
  in partitions by day, and go with their partition: operations.retention_partitions);
- events created before T that have no delivery left: those whose deliveries it purged, those
  that never had one (no endpoint was subscribed), and those whose endpoint was deleted;
- the captured request headers, response headers and response body of every attempt started
  before T that is kept (attempts of pending and failed deliveries, and the early attempts of a
  delivery replayed since): blanked, not deleted, so the timeline of numbers, triggers, times,
  statuses and errors stays (the attempt is marked `archived`; on PostgreSQL, it moves to the
  archive partition, and its own partition is dropped);
- test-inbox requests received before T;
- bulk replay jobs that finished before T;
- the dashboard's hourly counts (`HourlyStat`) of hours before T.

Failed deliveries (the dead-letter queue) and pending ones are never deleted by it: they stay
until replayed, or until an operator deletes old dead letters with `dead_letters_purge`
(`manage.py purge --failed --before …`).

Every batch is a short transaction over at most `batch_size` rows chosen by primary key. The
rows are found by walking an index in id order (the primary key, or `delivery_status_idx` for
deliveries) from the oldest, and since ids grow with time, the walk ends at the first row
younger than the cutoff: no statement of a purge reads a whole table (a dry run's counts do, and
on PostgreSQL, a partition of attempts is read once as it is dropped). A
purge cut short by its time budget resumes where it stopped: what it deleted is gone, and the
walks over attempts and events start from positions kept in the cache
(operations.retention_resume). With a time budget and attempts in partitions, deleting
deliveries stops at two thirds of it, so that a backlog of deliveries never keeps the partitions
of attempts, the bulk of the data, from going.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db import OperationalError, connection, transaction
from django.db.models import Exists, Model, OuterRef, Q, QuerySet
from django.utils import timezone

from deliveries.attempt_partitions import attempt_partitions_ensure, attempts_partitioned
from deliveries.models import Attempt, Delivery, HourlyStat, ReplayJob
from deliveries.sql_names import sql_with_names
from inbox.models import InboxRequest
from operations.retention_counts import history_counts
from operations.retention_partitions import (
    BLANK_CAPTURE,
    archived_attempts_delete,
    attempt_partition_purge,
    partitions_to_purge,
)
from operations.retention_resume import BLANKED_ATTEMPTS, CHECKED_EVENTS
from operations.retention_tenants import (
    RetentionCutoffs,
    TenantCutoff,
    retention_cutoff,
    retention_cutoffs,
)
from webhooks.models import Event

__all__ = ["PurgeCounts", "dead_letters_purge", "retention_cutoff", "retention_purge"]

logger = logging.getLogger(__name__)

# With a time budget and attempts in partitions, the share of it deleting deliveries may use.
DELIVERIES_SHARE = 2 / 3


@dataclass
class PurgeCounts:
    """Rows deleted or blanked per category; in a dry run, rows that would be."""

    deliveries: int = 0
    attempts: int = 0
    events: int = 0
    attempts_blanked: int = 0
    inbox_requests: int = 0
    replay_jobs: int = 0
    hourly_stats: int = 0
    # False when the time budget ran out first: the next run goes on from there.
    complete: bool = True

    def add(self, category: str, count: int) -> None:
        setattr(self, category, getattr(self, category) + count)


# Told each batch's counts, e.g. ("deliveries", 1000): for progress, and for tests.
OnBatch = Callable[[str, int], None]


def retention_purge(
    *,
    before: datetime | None,
    batch_size: int,
    dry_run: bool = False,
    deadline: float | None = None,
    on_batch: OnBatch | None = None,
) -> PurgeCounts:
    """Delete or blank what is older than `before` (see the module's docstring), batch by batch;
    for a tenant with its own `retention_days`, what is older than its own cutoff
    (operations.retention_tenants). `before` None purges only those tenants' data.

    `deadline` is a `time.monotonic()` value after which no new batch starts (`complete` is
    then False). With `dry_run`, nothing is written: one count per category says what a run
    would do now (operations.retention_counts). Never deletes a failed or pending delivery.
    """
    partitioned = attempts_partitioned()
    cutoffs = retention_cutoffs(before=before, now=timezone.now())
    if dry_run:
        counts = _retention_count(cutoffs, partitioned=partitioned)
    else:
        purge = _Purge(cutoffs, batch_size, deadline, on_batch)
        succeeded = Delivery.Status.SUCCEEDED
        if partitioned:
            purge.deliveries(succeeded, attempts_partitioned=True, share=DELIVERIES_SHARE)
            purge.tenants(share=DELIVERIES_SHARE)
            purge.attempt_partitions()
        elif purge.deliveries(succeeded) and purge.tenants():
            purge.attempt_captures()
        steps = (purge.inbox_requests, purge.replay_jobs, purge.orphaned_events, purge.hourly_stats)
        counts = purge.counts
        # all() stops at the first cut short.
        counts.complete = counts.complete and all(step() for step in steps)
    _log(counts, before=before, dry_run=dry_run, what="Retention purge")
    return counts


def dead_letters_purge(
    *,
    before: datetime,
    batch_size: int,
    dry_run: bool = False,
    on_batch: OnBatch | None = None,
) -> PurgeCounts:
    """Delete failed deliveries finished before `before`, their attempts, and their events once
    no delivery of those is left. Only ever on an operator's request.
    """
    if dry_run:
        counts = _deliveries_count(Delivery.Status.FAILED, before)
    else:
        # Dead letters go by the operator's time alone, whatever each tenant keeps.
        purge = _Purge(RetentionCutoffs(before=before), batch_size, None, on_batch)
        purge.deliveries(Delivery.Status.FAILED)
        counts = purge.counts
    _log(counts, before=before, dry_run=dry_run, what="Dead-letter purge")
    return counts


@dataclass(frozen=True)
class _Batch:
    """The ids of `batch_size` rows of a walk (or its last few) span first_id to last_id."""

    first_id: int
    last_id: int
    ends_walk: bool  # it held a row younger than the cutoff, or was the last


def _walk(
    rows: QuerySet, *, age_field: str, before: datetime, batch_size: int, after_id: int = 0
) -> Iterator[_Batch]:
    """Step through `rows` (ordered by id) `batch_size` at a time, from the first past
    `after_id` up to the first one younger than `before`.

    Ids grow with time (give or take the moments between taking an id and committing), so the
    rows past it are younger too: a later run will see them.
    """
    while True:
        read = list(rows.filter(id__gt=after_id).values_list("id", age_field)[:batch_size])
        if not read:
            return
        ends_walk = len(read) < batch_size or any(moment >= before for _, moment in read)
        yield _Batch(read[0][0], read[-1][0], ends_walk)
        if ends_walk:
            return
        after_id = read[-1][0]


class _Purge:
    """One purge's settings and counts; each method is one step, False when out of time.

    Each batch's statements select their rows by an id range that the walk read and by age
    again, so a row that changed since the walk read it is left alone.
    """

    def __init__(
        self,
        cutoffs: RetentionCutoffs,
        batch_size: int,
        deadline: float | None,
        on_batch: OnBatch | None,
    ) -> None:
        self.cutoffs, self.batch_size = cutoffs, batch_size
        # The global cutoff; None when only tenants with their own retention are purged.
        self.before = cutoffs.before
        self.deadline, self.on_batch = deadline, on_batch
        self.started = time.monotonic()
        self.counts = PurgeCounts()

    def _out_of_time(self, share: float = 1.0) -> bool:
        """Whether the budget, or `share` of it, is spent; if so, the purge is incomplete."""
        if self.deadline is None:
            return False
        if time.monotonic() < self.started + share * (self.deadline - self.started):
            return False
        self.counts.complete = False
        return True

    def _batches(
        self,
        rows: QuerySet,
        age_field: str,
        after_id: int = 0,
        share: float = 1.0,
        before: datetime | None = None,
    ) -> Iterator[_Batch]:
        before = before or self.before
        if before is None:
            return
        for batch in _walk(
            rows, age_field=age_field, before=before, batch_size=self.batch_size, after_id=after_id
        ):
            if self._out_of_time(share):
                return
            yield batch

    def _count(self, category: str, count: int) -> None:
        self.counts.add(category, count)
        if self.on_batch is not None and count:
            self.on_batch(category, count)

    def deliveries(
        self, status: str, *, attempts_partitioned: bool = False, share: float = 1.0
    ) -> bool:
        """Delete deliveries of `status` finished before the cutoff, their events once left
        without deliveries, and their attempts; with `attempts_partitioned`, only their
        archived attempts: the others go with their partition (retention_partitions). Stops at
        `share` of the budget."""
        # The walk follows delivery_status_idx (status, id DESC); a delivery finishes after it
        # is created, so the walk can end at the first one created after the cutoff.
        for batch in self._batches(_deliveries_by_id(status), "created_at", share=share):
            doomed = Delivery.objects.filter(
                self.cutoffs.not_overridden("endpoint__tenant_id"),
                status=status,
                id__gte=batch.first_id,
                id__lte=batch.last_id,
                finished_at__lt=self.before,
            )
            deliveries, attempts, events = _deliveries_delete(doomed, attempts_partitioned)
            self._count("attempts", attempts)
            self._count("deliveries", deliveries)
            self._count("events", events)
        return self.counts.complete

    def tenants(self, share: float = 1.0) -> bool:
        """For each tenant with a retention of its own, endpoint by endpoint: delete the
        succeeded deliveries finished before its cutoff, with all their attempts (wherever
        they are stored) and their events once left without deliveries; blank the kept
        deliveries' attempts started before it; delete its events without deliveries."""
        for cutoff in self.cutoffs.tenants:
            if cutoff.before is None:
                continue  # kept for good
            for endpoint_id in cutoff.endpoint_ids():
                if not self._endpoint(endpoint_id, cutoff.before, share):
                    return False
            if not self._tenant_events(cutoff):
                return False
        return self.counts.complete

    def _endpoint(self, endpoint_id: int, before: datetime, share: float) -> bool:
        # The walk follows delivery_endpoint_idx (endpoint, id DESC): this endpoint's rows only.
        rows = Delivery.objects.filter(endpoint_id=endpoint_id).order_by("id")
        last_old = 0
        for batch in self._batches(rows, "created_at", share=share, before=before):
            doomed = Delivery.objects.filter(
                endpoint_id=endpoint_id,
                status=Delivery.Status.SUCCEEDED,
                id__gte=batch.first_id,
                id__lte=batch.last_id,
                finished_at__lt=before,
            )
            deliveries, attempts, events = _deliveries_delete(doomed)
            self._count("attempts", attempts)
            self._count("deliveries", deliveries)
            self._count("events", events)
            last_old = batch.last_id
        if last_old:
            # What is left of the walked deliveries is kept: their old attempts are blanked.
            old = Attempt.objects.filter(
                delivery__endpoint_id=endpoint_id,
                delivery_id__lte=last_old,
                started_at__lt=before,
            ).exclude(**BLANK_CAPTURE)
            self._count("attempts_blanked", old.update(archived=True, **BLANK_CAPTURE))
        return self.counts.complete

    def _tenant_events(self, cutoff: TenantCutoff) -> bool:
        rows = Event.objects.filter(tenant_id__in=cutoff.tenant_ids).order_by("id")
        for batch in self._batches(rows, "created_at", before=cutoff.before):
            old = rows.filter(
                id__gte=batch.first_id, id__lte=batch.last_id, created_at__lt=cutoff.before
            )
            self._count("events", _events_delete(_without_deliveries(old)))
        return self.counts.complete

    def attempt_captures(self) -> bool:
        """Blank the kept attempts started before the cutoff, on a plain table of attempts."""
        start = BLANKED_ATTEMPTS.start()
        for batch in self._batches(_by_id(Attempt), "started_at", after_id=start):
            captured = Attempt.objects.filter(
                self.cutoffs.not_overridden("delivery__endpoint__tenant_id"),
                id__gte=batch.first_id,
                id__lte=batch.last_id,
                started_at__lt=self.before,
            ).exclude(**BLANK_CAPTURE)
            self._count("attempts_blanked", captured.update(archived=True, **BLANK_CAPTURE))
            if not batch.ends_walk:
                BLANKED_ATTEMPTS.remember(last_id=batch.last_id)
        return self.counts.complete

    def attempt_partitions(self) -> bool:
        """Drop each partition of attempts that ends by the cutoff, its kept attempts archived
        first (operations.retention_partitions), oldest first; one in use stops the step until
        the next run."""
        if self.before is None or self._out_of_time():
            return self.before is None
        _partitions_ensure()  # rows waiting in the default partition go to theirs first
        for partition in partitions_to_purge(self.before):
            if self._out_of_time():
                return False
            purged = attempt_partition_purge(partition, cutoffs=self.cutoffs)
            if purged is None:
                self.counts.complete = False
                return False
            deleted, archived = purged
            self._count("attempts_blanked", archived)
            self._count("attempts", deleted)
        return self.counts.complete

    def inbox_requests(self) -> bool:
        for batch in self._batches(_by_id(InboxRequest), "received_at"):
            old = InboxRequest.objects.filter(
                id__gte=batch.first_id, id__lte=batch.last_id, received_at__lt=self.before
            )
            self._count("inbox_requests", old.delete()[0])
        return self.counts.complete

    def hourly_stats(self) -> bool:
        """The dashboard's hourly counts of hours before the global cutoff: a few rows per
        endpoint and hour, taken oldest first on their hour's index."""
        if self.before is None:
            return self.counts.complete
        old = HourlyStat.objects.filter(hour__lt=self.before).order_by("hour")
        while not self._out_of_time():
            ids = list(old.values_list("id", flat=True)[: self.batch_size])
            if not ids:
                break
            self._count("hourly_stats", HourlyStat.objects.filter(id__in=ids).delete()[0])
        return self.counts.complete

    def replay_jobs(self) -> bool:
        if self.before is None:
            return self.counts.complete
        for batch in self._batches(_by_id(ReplayJob), "created_at"):
            done = _replay_jobs_done(self.before).filter(
                id__gte=batch.first_id, id__lte=batch.last_id
            )
            # Deliveries still pointing at a job lose the link (SET_NULL), in this transaction.
            deleted = done.only("id").delete()[1]
            self._count("replay_jobs", deleted.get(ReplayJob._meta.label, 0))
        return self.counts.complete

    def orphaned_events(self) -> bool:
        start = CHECKED_EVENTS.start()
        for batch in self._batches(_by_id(Event), "created_at", after_id=start):
            old = Event.objects.filter(
                self.cutoffs.not_overridden("tenant_id"),
                id__gte=batch.first_id,
                id__lte=batch.last_id,
                created_at__lt=self.before,
            )
            self._count("events", _events_delete(_without_deliveries(old)))
            if not batch.ends_walk:
                CHECKED_EVENTS.remember(last_id=batch.last_id)
        return self.counts.complete


def _by_id(model: type[Model]) -> QuerySet:
    return model._default_manager.order_by("id")


def _deliveries_by_id(status: str) -> QuerySet[Delivery]:
    """Deliveries of `status` in id order, read through delivery_status_idx (status, id DESC).

    Asked for `status = …` and ordered by id, PostgreSQL takes the primary key instead whenever
    it guesses the two cost the same, and then steps over every kept delivery older than the
    cutoff (each failed and pending one) on each run: 17 ms and 6,800 buffers for the first
    batch with 35,000 kept. With `status IN (…, '')`, a value no delivery has, and ordered by
    status then id, only that index, read backwards, gives the order: 0.3 ms and 17 buffers.
    """
    return Delivery.objects.filter(status__in=[status, ""]).order_by("-status", "id")


def _deliveries_delete(
    doomed: QuerySet[Delivery], attempts_partitioned: bool = False
) -> tuple[int, int, int]:
    """Delete these deliveries with their attempts (with `attempts_partitioned`, their archived
    ones only), then their events left without deliveries."""
    with transaction.atomic():
        # Locked: a replay that put one back in the queue since the walk read it has it out of
        # `doomed`, and one that comes now waits for this commit. One locked elsewhere waits for
        # the next run.
        rows = list(doomed.select_for_update(skip_locked=True).values_list("id", "event_id"))
        if not rows:
            return 0, 0, 0
        ids = [row[0] for row in rows]
        if attempts_partitioned:
            attempts = archived_attempts_delete(ids)
            # Not the ORM's delete, which would look for their attempts in every partition.
            with connection.cursor() as cursor:
                cursor.execute(sql_with_names(_DELIVERIES_DELETE_SQL, Delivery), [ids])
                deliveries = cursor.rowcount
        else:
            # The ORM's delete follows every relation to a delivery: attempts first.
            deleted = Delivery.objects.filter(id__in=ids).only("id").delete()[1]
            deliveries = deleted.get(Delivery._meta.label, 0)
            attempts = deleted.get(Attempt._meta.label, 0)
        events = _events_delete(
            _without_deliveries(Event.objects.filter(id__in={row[1] for row in rows}))
        )
    return deliveries, attempts, events


_DELIVERIES_DELETE_SQL = "DELETE FROM {Delivery.table} WHERE {Delivery.id} = ANY(%s)"


def _partitions_ensure() -> None:
    try:
        attempt_partitions_ensure()
    except OperationalError:  # busy: days that exist are purged all the same
        logger.warning("Could not create attempt partitions before purging", exc_info=True)


def _without_deliveries(events: QuerySet[Event]) -> QuerySet[Event]:
    return events.exclude(Exists(Delivery.objects.filter(event_id=OuterRef("pk"))))


def _events_delete(events: QuerySet[Event]) -> int:
    # Only ids are loaded: the ORM's delete would otherwise read every payload first.
    return events.only("id").delete()[1].get(Event._meta.label, 0)


def _replay_jobs_done(before: datetime) -> QuerySet[ReplayJob]:
    ended = (ReplayJob.Status.DONE, ReplayJob.Status.FAILED)
    return ReplayJob.objects.filter(status__in=ended, finished_at__lt=before)


# --- Dry runs: one count per category, read-only ----------------------------------------------


def _doomed(status: str, before: datetime, prefix: str = "") -> Q:
    return Q(**{f"{prefix}status": status, f"{prefix}finished_at__lt": before})


def _deliveries_count(status: str, before: datetime) -> PurgeCounts:
    """What a purge of `status` deliveries finished before `before` would delete."""
    doomed = _doomed(status, before)
    of_event = Delivery.objects.filter(event_id=OuterRef("pk"))
    return PurgeCounts(
        deliveries=Delivery.objects.filter(doomed).count(),
        attempts=Attempt.objects.filter(_doomed(status, before, "delivery__")).count(),
        # Events that lose their last delivery.
        events=Event.objects.filter(Exists(of_event.filter(doomed)))
        .exclude(Exists(of_event.exclude(doomed)))
        .count(),
    )


def _retention_count(cutoffs: RetentionCutoffs, *, partitioned: bool) -> PurgeCounts:
    counts = PurgeCounts()
    for category, count in history_counts(cutoffs, partitioned=partitioned).items():
        counts.add(category, count)
    if (before := cutoffs.before) is not None:
        counts.inbox_requests = InboxRequest.objects.filter(received_at__lt=before).count()
        counts.replay_jobs = _replay_jobs_done(before).count()
        counts.hourly_stats = HourlyStat.objects.filter(hour__lt=before).count()
    return counts


def _log(counts: PurgeCounts, *, before: datetime | None, dry_run: bool, what: str) -> None:
    logger.info(
        "%s%s before %s: deliveries=%s attempts=%s events=%s attempts_blanked=%s "
        "inbox_requests=%s replay_jobs=%s hourly_stats=%s%s",
        what,
        " (dry run)" if dry_run else "",
        before.isoformat() if before else "(tenants' own retention only)",
        counts.deliveries,
        counts.attempts,
        counts.events,
        counts.attempts_blanked,
        counts.inbox_requests,
        counts.replay_jobs,
        counts.hourly_stats,
        "" if counts.complete else " (time budget spent: the next run goes on)",
    )
