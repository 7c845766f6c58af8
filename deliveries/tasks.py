"""Celery tasks. They take no state from the message: the database says what is due."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from deliveries.batch import deliver_due_batch
from deliveries.dispatch import dispatch_replay_job, wake_flag_clear, wake_workers
from deliveries.selectors import deliveries_due, replay_jobs_stalled
from deliveries.services import replay_job_run


@shared_task(name="deliveries.tasks.deliver_due")
def deliver_due() -> int:
    """Attempt one batch of due deliveries; a full batch wakes another worker for the rest.

    Safe to run any number of times at once: each delivery is leased to one worker.
    """
    wake_flag_clear()
    return deliver_due_batch(limit=settings.WEBHOOKS_BATCH_SIZE, on_full_batch=wake_workers)


@shared_task(name="deliveries.tasks.run_replay_job")
def run_replay_job(job_id: int) -> int:
    """Run a bulk replay job; returns how many deliveries it queued."""
    return replay_job_run(job_id=job_id).replayed


@shared_task(name="deliveries.tasks.sweep_due_deliveries")
def sweep_due_deliveries() -> bool:
    """Wake a worker if anything is due: a retry whose time came, or work whose wake-up was lost.

    Also starts replay jobs whose start message was lost.
    """
    now = timezone.now()
    for job_id in replay_jobs_stalled(at=now):
        dispatch_replay_job(job_id)
    if deliveries_due(at=now).exists():
        wake_workers()
        return True
    return False
