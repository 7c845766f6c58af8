"""What the engine does when subscriptions change an endpoint's state.

Subscriptions owns the state change and announces it inside its transaction; the engine holds or
lets go the endpoint's backlog in that same transaction (see deliveries.holds). Connected once,
when Django starts (DeliveriesConfig.ready).
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from deliveries.dispatch import wake_workers
from deliveries.holds import backlog_park, backlog_resume, backlog_unpark
from deliveries.verification import backlog_release, challenge_send, challenges_unpark
from subscriptions.models import Endpoint
from subscriptions.signals import (
    endpoint_challenged,
    endpoint_enabling,
    endpoint_verified,
    endpoints_disabling,
)


def backlogs_park(*, endpoint_ids: list[int], **_: object) -> None:
    backlog_park(endpoint_ids=endpoint_ids)


def backlog_let_go(
    *, endpoint_id: int, paused_until: datetime | None, at: datetime, **_: object
) -> None:
    if Endpoint.objects.filter(id=endpoint_id, verified_at=None).exists():
        # It has not echoed its ownership challenge: that goes, the rest waits for the echo.
        resumed = challenges_unpark(endpoint_id=endpoint_id, at=at)
    else:
        resumed = backlog_unpark(endpoint_ids=[endpoint_id], at=at)
    if paused_until is not None:
        resumed += backlog_resume(held_until={endpoint_id: paused_until}, at=at)
    if resumed:
        transaction.on_commit(wake_workers)


def connect() -> None:
    endpoints_disabling.connect(backlogs_park, dispatch_uid="deliveries.holds")
    endpoint_enabling.connect(backlog_let_go, dispatch_uid="deliveries.holds")
    endpoint_challenged.connect(challenge_send, dispatch_uid="deliveries.verification")
    endpoint_verified.connect(backlog_release, dispatch_uid="deliveries.verification")
