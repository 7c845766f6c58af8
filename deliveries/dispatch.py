"""Waking workers. The broker only carries wake-ups; the database holds the work.

A burst of events would otherwise queue one wake-up task per event, nearly all of which find
nothing left to claim. With a Redis broker, a flag coalesces them: while a wake-up is queued and
not yet started, further ones are skipped. A worker clears the flag before it claims, so a
delivery committed after that point always queues a fresh wake-up; the flag also expires on its
own, should its task be lost, and the sweeper remains the backstop.
"""

from __future__ import annotations

import logging
import os

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

WAKE_FLAG = "hookline:wake-queued"
WAKE_FLAG_TTL_MS = 2000

_client: redis.Redis | None = None
_client_pid: int | None = None


def _flag_client() -> redis.Redis | None:
    global _client, _client_pid
    if not settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        return None
    if _client is None or _client_pid != os.getpid():
        _client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=1)
        _client_pid = os.getpid()
    return _client


def wake_workers() -> None:
    """Ask a worker to deliver what is due. A broker outage only delays: the sweeper wakes later."""
    from deliveries.tasks import deliver_due

    try:
        client = _flag_client()
        if client is not None and not client.set(WAKE_FLAG, 1, nx=True, px=WAKE_FLAG_TTL_MS):
            return  # a wake-up is already queued and has not started claiming yet
        deliver_due.delay()
    except Exception:
        logger.warning(
            "Broker unreachable; the sweeper will dispatch due deliveries", exc_info=True
        )


def wake_flag_clear() -> None:
    """Called by a worker before it claims: later commits must queue a wake-up of their own."""
    client = _flag_client()
    if client is not None:
        try:
            client.delete(WAKE_FLAG)
        except redis.RedisError:
            logger.warning("Could not clear the wake-up flag; it expires by itself")


def dispatch_replay_job(job_id: int) -> None:
    """Hand a replay job to a worker; if the broker is down, the sweeper starts it later."""
    from deliveries.tasks import run_replay_job

    try:
        run_replay_job.delay(job_id)
    except Exception:
        logger.warning("Broker unreachable; replay job %s starts at the next sweep", job_id)
