"""Celery tasks. They take no state from the message: the database says what is due."""

from __future__ import annotations

import dataclasses
import time

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from deliveries.batch import deliver_until_idle
from deliveries.dispatch import (
    another_worker_draining,
    dispatch_replay_job,
    hand_over,
    help_flag_clear,
    wake_flag_clear,
    wake_flag_hold,
    wake_helper,
    wake_workers,
)
from deliveries.lanes import slow_lane
from deliveries.selectors import deliveries_due, replay_jobs_stalled
from deliveries.services import replay_job_run
from operations.alerts import alerts_sweep
from operations.retention import retention_cutoff, retention_purge

# A worker drains the backlog for this long before it hands over to a fresh task, so that other
# tasks (replays, sweeps) get their turn.
DRAIN_BUDGET_SECONDS = 10.0


@shared_task(name="deliveries.tasks.deliver_due")
def deliver_due(helper: bool = False) -> int:
    """Attempt due deliveries batch after batch; a full batch wakes another worker to help.

    Safe to run any number of times at once: each delivery is leased to one worker. A wake-up
    that finds another worker draining ends at once (that worker takes what woke it); a helper,
    asked for by a full batch, drains beside it.
    """
    help_flag_clear()
    if not helper and another_worker_draining():
        return 0
    return deliver_until_idle(
        limit=settings.WEBHOOKS_BATCH_SIZE,
        budget_seconds=DRAIN_BUDGET_SECONDS,
        while_draining=wake_flag_hold,
        before_last_claim=wake_flag_clear,
        on_full_batch=wake_helper,
        on_budget_spent=hand_over,
        lane=slow_lane(),
    )


@shared_task(name="deliveries.tasks.run_replay_job")
def run_replay_job(job_id: int) -> int:
    """Run a bulk replay job; returns how many deliveries it queued."""
    return replay_job_run(job_id=job_id).replayed


@shared_task(name="deliveries.tasks.sweep_due_deliveries")
def sweep_due_deliveries() -> bool:
    """Wake a worker if anything is due: a retry whose time came, or work whose wake-up was lost.

    Also starts replay jobs whose start message was lost, and raises or clears the operational
    alerts that the sweeper watches (operations.alerts).
    """
    now = timezone.now()
    for job_id in replay_jobs_stalled(at=now):
        dispatch_replay_job(job_id)
    due = deliveries_due(at=now).exists()
    if due:
        wake_workers()
    alerts_sweep(at=now, anything_due=due)
    return due


# A purge stops starting batches after this long, so that it never holds a worker for long; the
# next run goes on where it stopped.
PURGE_BUDGET_SECONDS = 30.0


@shared_task(name="deliveries.tasks.purge_expired")
def purge_expired() -> dict[str, int | bool] | None:
    """Purge what is older than WEBHOOKS_RETENTION_DAYS (see operations.retention); 0 days: none.

    Never deletes a failed or pending delivery. Returns the counts, or None when retention is off.
    """
    before = retention_cutoff(days=settings.WEBHOOKS_RETENTION_DAYS)
    if before is None:
        return None
    counts = retention_purge(
        before=before,
        batch_size=settings.WEBHOOKS_RETENTION_BATCH_SIZE,
        deadline=time.monotonic() + PURGE_BUDGET_SECONDS,
    )
    return dataclasses.asdict(counts)
