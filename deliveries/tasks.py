"""Celery tasks. They take no state from the message: the database says what is due."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from config.signals import send_robustly
from deliveries.attempt_partitions import attempt_partitions_ensure
from deliveries.batch import deliver_until_idle
from deliveries.dispatch import (
    DELIVER_DUE,
    RUN_REPLAY_JOB,
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
from deliveries.models import Delivery
from deliveries.ordering import keys_advance, keys_stalled
from deliveries.selectors import deliveries_due, replay_jobs_stalled
from deliveries.services import replay_job_run
from deliveries.signals import deliveries_swept

# A worker drains the backlog for this long before it hands over to a fresh task, so that other
# tasks (replays, sweeps) get their turn.
DRAIN_BUDGET_SECONDS = 10.0


@shared_task(name=DELIVER_DUE)
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


@shared_task(name=RUN_REPLAY_JOB)
def run_replay_job(job_id: int) -> int:
    """Run a bulk replay job; returns how many deliveries it queued."""
    return replay_job_run(job_id=job_id).replayed


@shared_task(name="deliveries.tasks.sweep_due_deliveries")
def sweep_due_deliveries() -> bool:
    """Wake a worker if anything is due: a retry whose time came, or work whose wake-up was lost.

    Also starts replay jobs whose start message was lost, lets ordering keys go whose advance was
    lost with a process that died (deliveries.ordering), and raises or clears the operational
    alerts that the sweeper watches (operations.alerts, through `deliveries_swept`).
    """
    now = timezone.now()
    for job_id in replay_jobs_stalled(at=now):
        dispatch_replay_job(job_id)
    keys_advance(keys_stalled(), at=now)
    due = deliveries_due(at=now).exists()
    if due:
        wake_workers()
    send_robustly(deliveries_swept, sender=Delivery, at=now, anything_due=due)
    return due


@shared_task(name="deliveries.tasks.create_attempt_partitions")
def create_attempt_partitions() -> list[str]:
    """Create the attempt partitions of today and the days ahead (deliveries.attempt_partitions);
    returns the names created. Does nothing where attempts are a plain table. If the partitions
    are busy, raises OperationalError and creates nothing: the next run tries again, and no
    attempt is refused meanwhile."""
    return [partition.name for partition in attempt_partitions_ensure()]
