"""Waking workers. The broker only carries wake-ups; the database holds the work."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def wake_workers() -> None:
    """Ask a worker to deliver what is due. A broker outage only delays: the sweeper wakes later."""
    from deliveries.tasks import deliver_due

    try:
        deliver_due.delay()
    except Exception:
        logger.warning(
            "Broker unreachable; the sweeper will dispatch due deliveries", exc_info=True
        )


def dispatch_replay_job(job_id: int) -> None:
    """Hand a replay job to a worker; if the broker is down, the sweeper starts it later."""
    from deliveries.tasks import run_replay_job

    try:
        run_replay_job.delay(job_id)
    except Exception:
        logger.warning("Broker unreachable; replay job %s starts at the next sweep", job_id)
