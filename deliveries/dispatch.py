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
