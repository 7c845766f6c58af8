"""Waking workers. The broker only carries wake-ups; the database holds the work.

A burst of events would otherwise queue one wake-up task per event, nearly all of which find
nothing left to claim. A flag coalesces them: while it is set, a worker is bound to claim again,
so further wake-ups are skipped. It is set by whoever queues a wake-up, and held by a worker while
it drains. A worker clears it before the claim that confirms nothing is left, so a delivery
committed after that point always queues a fresh wake-up; the flag also expires on its own,
should its worker die, and the sweeper remains the backstop.

A second flag does the same for helpers: a worker whose claim came back full asks for one more
worker, and no more, until a worker has started.

The flags live in Redis when there is one, else in the database (deliveries.wake_flags), so
wake-ups are coalesced on every broker.
"""

from __future__ import annotations

import logging
import os
import socket

from celery import current_app

from deliveries import wake_flags

logger = logging.getLogger(__name__)

WAKE_FLAG = "hookline:wake-queued"
HELP_FLAG = "hookline:help-queued"
WAKE_FLAG_TTL_MS = 2000
QUEUED = "queued"  # the flag's value when a wake-up is queued; a draining worker sets its own

# The tasks (deliveries.tasks) are sent by name, as their own .delay() would send them (results
# ignored): the tasks module imports this one.
DELIVER_DUE = "deliveries.tasks.deliver_due"
RUN_REPLAY_JOB = "deliveries.tasks.run_replay_job"


def wake_workers() -> None:
    """Ask a worker to deliver what is due. A broker outage only delays: the sweeper wakes later."""
    _queue_unless_flagged(WAKE_FLAG)


def wake_helper() -> None:
    """Ask one more worker to share a backlog, unless one was asked and has not started yet."""
    _queue_unless_flagged(HELP_FLAG, helper=True)


def hand_over() -> None:
    """Queue a successor to a worker whose time is up: it must run even though the flag is set,
    and it must not take the flag for a sign that this worker is still draining."""
    wake_flags.store().set(WAKE_FLAG, QUEUED, WAKE_FLAG_TTL_MS)
    _queue_unless_flagged(None)


def _queue_unless_flagged(flag: str | None, *, helper: bool = False) -> None:
    if flag and not wake_flags.store().set_unless_set(flag, QUEUED, WAKE_FLAG_TTL_MS):
        return  # a wake-up is queued, or a worker is draining and will claim again
    try:
        current_app.send_task(DELIVER_DUE, kwargs={"helper": helper}, ignore_result=True)
    except Exception:
        logger.warning(
            "Broker unreachable; the sweeper will dispatch due deliveries", exc_info=True
        )


def wake_flag_hold() -> None:
    """Called by a worker that found work: it will claim again, so wake-ups can be skipped."""
    wake_flags.store().set(WAKE_FLAG, _drainer_id(), WAKE_FLAG_TTL_MS)


def another_worker_draining() -> bool:
    """Whether the flag was last set by a draining worker other than this one.

    A wake-up queued when the flag was clear can then end at once: the flag was taken after that
    wake-up's delivery was committed, and the worker that took it claims again before it stops.
    """
    holder = wake_flags.store().holder(WAKE_FLAG)
    return holder is not None and holder not in (QUEUED, _drainer_id())


def wake_flag_clear() -> None:
    """Called by a worker before its last claim: later commits must queue a wake-up of their own."""
    wake_flags.store().clear(WAKE_FLAG)


def _drainer_id() -> str:
    return f"draining:{socket.gethostname()}:{os.getpid()}"


def help_flag_clear() -> None:
    """Called by a worker as it starts: a later full batch may ask for another helper."""
    wake_flags.store().clear(HELP_FLAG)


def dispatch_replay_job(job_id: int) -> None:
    """Hand a replay job to a worker; if the broker is down, the sweeper starts it later."""
    try:
        current_app.send_task(RUN_REPLAY_JOB, args=(job_id,), ignore_result=True)
    except Exception:
        logger.warning("Broker unreachable; replay job %s starts at the next sweep", job_id)
