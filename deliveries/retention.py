"""Retention: what Hookline deletes once it is older than WEBHOOKS_RETENTION_DAYS.

`retention_purge` (run by the beat task `deliveries.tasks.purge_expired` and by
`manage.py purge`) removes, for a cutoff T:

- succeeded deliveries finished before T, with their attempts;
- events created before T that have no delivery left: those whose deliveries it purged, those
  that never had one (no endpoint was subscribed), and those whose endpoint was deleted;
- the captured request headers, response headers and response body of every attempt started
  before T that is kept (attempts of pending and failed deliveries, and the early attempts of a
  delivery replayed since): blanked, not deleted, so the timeline of numbers, triggers, times,
  statuses and errors stays;
- test-inbox requests received before T;
- bulk replay jobs that finished before T.

Failed deliveries (the dead-letter queue) and pending ones are never deleted by it: they stay
until replayed, or until an operator deletes old dead letters with `dead_letters_purge`
(`manage.py purge --failed --before …`).

Every batch is a short transaction over at most `batch_size` rows chosen by primary key. The
rows are found by walking an index in id order (the primary key, or `delivery_status_idx` for
deliveries) from the oldest, and since ids grow with time, the walk ends at the first row
younger than the cutoff: no statement reads a whole table. A purge cut short by its time budget
resumes where it stopped: what it deleted is gone, and blanking goes on from a position kept in
the cache.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from deliveries.models import Attempt, Delivery, InboxRequest, ReplayJob
from webhooks.models import Event

logger = logging.getLogger(__name__)

# What an attempt keeps of its request and response once blanked.
BLANK_CAPTURE = {"request_headers": {}, "response_headers": {}, "response_body": ""}


@dataclass
class PurgeCounts:
    """Rows deleted or blanked per category; in a dry run, rows that would be."""

    deliveries: int = 0
    attempts: int = 0
    events: int = 0
    attempts_blanked: int = 0
    inbox_requests: int = 0
    replay_jobs: int = 0
    # False when the time budget ran out first: the next run goes on from there.
    complete: bool = True

    def add(self, category: str, count: int) -> None:
        setattr(self, category, getattr(self, category) + count)


# Told each batch's counts, e.g. ("deliveries", 1000): for progress, and for tests.
OnBatch = Callable[[str, int], None]


def retention_cutoff(*, days: int, now: datetime | None = None) -> datetime | None:
    """The time before which data goes, for a retention of `days`; None when 0 (keep all)."""
    if days <= 0:
        return None
    try:
        return (now or timezone.now()) - timedelta(days=days)
    except OverflowError:  # more days than the calendar holds: nothing is that old
        return datetime.min.replace(tzinfo=UTC)


def retention_purge(
    *,
    before: datetime,
    batch_size: int,
    dry_run: bool = False,
    deadline: float | None = None,
    on_batch: OnBatch | None = None,
) -> PurgeCounts:
    """Delete or blank what is older than `before` (see the module's docstring), batch by batch.

    `deadline` is a `time.monotonic()` value after which no new batch starts (`complete` is
    then False). With `dry_run`, nothing is written: the counts say what a run would do now.
    Never deletes a failed or pending delivery.
    """
    purge = _Purge(before, batch_size, dry_run, deadline, on_batch)
    steps = (
        lambda: purge.deliveries(Delivery.Status.SUCCEEDED),
        purge.attempt_captures,
        purge.inbox_requests,
        purge.replay_jobs,
        purge.orphaned_events,
    )
    for step in steps:
        if not step():
            purge.counts.complete = False
            break
    _log(purge.counts, before=before, dry_run=dry_run, what="Retention purge")
    return purge.counts


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
    purge = _Purge(before, batch_size, dry_run, None, on_batch)
    purge.deliveries(Delivery.Status.FAILED)
    _log(purge.counts, before=before, dry_run=dry_run, what="Dead-letter purge")
    return purge.counts


@dataclass(frozen=True)
class _Batch:
    ids: list[int]  # of the rows read that are older than the cutoff
    last_id: int
    ends_walk: bool  # it held a row younger than the cutoff, or was the last


def _walk(
    rows: QuerySet, *, age_field: str, before: datetime, batch_size: int, after_id: int = 0
) -> Iterator[_Batch]:
    """Read `rows` in id order, `batch_size` at a time, up to the first one younger than `before`.

    Ids grow with time (give or take the moments between taking an id and committing), so the
    rows past it are younger too: a later run will see them.
    """
    while True:
        read = list(
            rows.filter(id__gt=after_id).order_by("id").values_list("id", age_field)[:batch_size]
        )
        if not read:
            return
        old = [row_id for row_id, moment in read if moment < before]
        ends_walk = len(old) < len(read) or len(read) < batch_size
        after_id = read[-1][0]
        yield _Batch(old, after_id, ends_walk)
        if ends_walk:
            return


class _Purge:
    """One purge's settings and counts; each method is one step, False when out of time."""

    def __init__(
        self,
        before: datetime,
        batch_size: int,
        dry_run: bool,
        deadline: float | None,
        on_batch: OnBatch | None,
    ) -> None:
        self.before, self.batch_size, self.dry_run = before, batch_size, dry_run
        self.deadline, self.on_batch = deadline, on_batch
        self.counts = PurgeCounts()

    def _walk(self, rows: QuerySet, age_field: str, after_id: int = 0) -> Iterator[_Batch]:
        return _walk(
            rows,
            age_field=age_field,
            before=self.before,
            batch_size=self.batch_size,
            after_id=after_id,
        )

    def _out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _count(self, category: str, count: int) -> None:
        self.counts.add(category, count)
        if self.on_batch is not None and count:
            self.on_batch(category, count)

    def deliveries(self, status: str) -> bool:
        # The walk follows delivery_status_idx (status, id DESC); a delivery finishes after it
        # is created, so the walk can end at the first one created after the cutoff.
        for batch in self._walk(Delivery.objects.filter(status=status), "created_at"):
            if self._out_of_time():
                return False
            doomed = Delivery.objects.filter(
                id__in=batch.ids, status=status, finished_at__lt=self.before
            )
            if self.dry_run:
                deliveries, attempts, events = _deliveries_count(
                    doomed, status=status, before=self.before, last_id=batch.last_id
                )
            else:
                deliveries, attempts, events = _deliveries_delete(doomed)
            self._count("attempts", attempts)
            self._count("deliveries", deliveries)
            self._count("events", events)
        return True

    def attempt_captures(self) -> bool:
        for batch in self._walk(Attempt.objects.all(), "started_at", after_id=_blanked_through()):
            if self._out_of_time():
                return False
            captured = (
                Attempt.objects.filter(id__in=batch.ids)
                .exclude(**BLANK_CAPTURE)
                # Attempts of deliveries this purge deletes: a dry run must not count them twice.
                .exclude(
                    delivery__status=Delivery.Status.SUCCEEDED,
                    delivery__finished_at__lt=self.before,
                )
            )
            if self.dry_run:
                self._count("attempts_blanked", captured.count())
                continue
            self._count("attempts_blanked", captured.update(**BLANK_CAPTURE))
            if not batch.ends_walk:
                _remember_blanked_through(batch.last_id)
        return True

    def inbox_requests(self) -> bool:
        for batch in self._walk(InboxRequest.objects.all(), "received_at"):
            if self._out_of_time():
                return False
            old = InboxRequest.objects.filter(id__in=batch.ids)
            self._count("inbox_requests", old.count() if self.dry_run else old.delete()[0])
        return True

    def replay_jobs(self) -> bool:
        for batch in self._walk(ReplayJob.objects.all(), "created_at"):
            if self._out_of_time():
                return False
            done = ReplayJob.objects.filter(
                id__in=batch.ids, status=ReplayJob.Status.DONE, finished_at__lt=self.before
            )
            if self.dry_run:
                self._count("replay_jobs", done.count())
            else:
                # Deliveries still pointing at a job lose the link (SET_NULL), in this transaction.
                deleted = done.only("id").delete()[1]
                self._count("replay_jobs", deleted.get(ReplayJob._meta.label, 0))
        return True

    def orphaned_events(self) -> bool:
        for batch in self._walk(Event.objects.all(), "created_at"):
            if self._out_of_time():
                return False
            orphaned = _without_deliveries(Event.objects.filter(id__in=batch.ids))
            if self.dry_run:
                self._count("events", orphaned.count())
            else:
                self._count("events", _events_delete(orphaned))
        return True


def _deliveries_delete(doomed: QuerySet[Delivery]) -> tuple[int, int, int]:
    """Delete these deliveries with their attempts, then their events left without deliveries."""
    with transaction.atomic():
        # Locked and checked again: a replay may have put one back in the queue since the walk
        # read it. One locked elsewhere waits for the next run.
        rows = list(doomed.select_for_update(skip_locked=True).values_list("id", "event_id"))
        if not rows:
            return 0, 0, 0
        # The ORM's delete follows every relation to a delivery: attempts first.
        deleted = Delivery.objects.filter(id__in=[row[0] for row in rows]).only("id").delete()[1]
        events = _events_delete(
            _without_deliveries(Event.objects.filter(id__in={row[1] for row in rows}))
        )
    return (
        deleted.get(Delivery._meta.label, 0),
        deleted.get(Attempt._meta.label, 0),
        events,
    )


def _deliveries_count(
    doomed: QuerySet[Delivery], *, status: str, before: datetime, last_id: int
) -> tuple[int, int, int]:
    """What `_deliveries_delete` would delete for this batch of a walk that ends at `last_id`."""
    rows = list(doomed.values_list("id", "event_id"))
    attempts = Attempt.objects.filter(delivery_id__in=[row[0] for row in rows]).count()
    # An event goes with the last of its deliveries, so it is counted in the batch holding that
    # one, if none of its deliveries is kept.
    kept_or_later = Delivery.objects.filter(event_id=OuterRef("pk")).filter(
        ~Q(status=status, finished_at__lt=before) | Q(id__gt=last_id)
    )
    events = (
        Event.objects.filter(id__in={row[1] for row in rows}).exclude(Exists(kept_or_later)).count()
    )
    return len(rows), attempts, events


def _without_deliveries(events: QuerySet[Event]) -> QuerySet[Event]:
    return events.exclude(Exists(Delivery.objects.filter(event_id=OuterRef("pk"))))


def _events_delete(events: QuerySet[Event]) -> int:
    # Only ids are loaded: the ORM's delete would otherwise read every payload first.
    return events.only("id").delete()[1].get(Event._meta.label, 0)


# Every attempt up to this id is blanked already (attempts are never written again once stored),
# so an hourly run reads only the attempts that aged since the last one. The id is stored with
# that attempt's start: if the attempt is gone or different (its dead letter was purged, or the
# database was restored or recreated), the walk starts from the first attempt again.
def _blanked_through_key() -> str:
    return f"hookline:retention:{connection.settings_dict['NAME']}:attempts-blanked-through"


def _blanked_through() -> int:
    remembered = cache.get(_blanked_through_key())
    if not remembered:
        return 0
    attempt_id, started_at = remembered
    if not Attempt.objects.filter(id=attempt_id, started_at=started_at).exists():
        return 0
    return attempt_id


def _remember_blanked_through(attempt_id: int) -> None:
    started_at = Attempt.objects.filter(id=attempt_id).values_list("started_at", flat=True).first()
    if started_at is not None:
        cache.set(_blanked_through_key(), (attempt_id, started_at), timeout=None)


def _log(counts: PurgeCounts, *, before: datetime, dry_run: bool, what: str) -> None:
    logger.info(
        "%s%s before %s: deliveries=%s attempts=%s events=%s attempts_blanked=%s "
        "inbox_requests=%s replay_jobs=%s%s",
        what,
        " (dry run)" if dry_run else "",
        before.isoformat(),
        counts.deliveries,
        counts.attempts,
        counts.events,
        counts.attempts_blanked,
        counts.inbox_requests,
        counts.replay_jobs,
        "" if counts.complete else " (time budget spent: the next run goes on)",
    )
