"""Holding a paused or disabled endpoint's backlog out of the claim's way.

A claim walks the due index in `next_attempt_at` order. Deliveries to an endpoint whose circuit is
open, or that is disabled, must not be sent, and if they stayed due every claim would walk past
all of them: one receiver down for a day, with a backlog of a hundred thousand, would slow every
other tenant's deliveries. So their `next_attempt_at` says when they may go: the end of the
circuit's pause, or nothing (NULL, never due) while the endpoint is disabled. Claims still check
the endpoint, so a delivery that is not held in time is skipped, only less cheaply.

These updates touch an endpoint's whole backlog, and run when its state changes (a circuit opens,
a probe goes, an endpoint recovers or is disabled), never per delivery.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from django.db.models import QuerySet

from deliveries.models import Delivery


def _pending(endpoint_ids: Collection[int]) -> QuerySet[Delivery]:
    return Delivery.objects.filter(
        endpoint_id__in=list(endpoint_ids), status=Delivery.Status.PENDING
    )


def backlog_hold(*, endpoint_id: int, until: datetime, except_ids: Collection[int] = ()) -> int:
    """The endpoint's pending deliveries wait until `until` (none is moved earlier)."""
    return (
        _pending([endpoint_id])
        .filter(next_attempt_at__lt=until)
        .exclude(id__in=list(except_ids))
        .update(next_attempt_at=until)
    )


def backlog_resume(*, held_until: dict[int, datetime], at: datetime) -> int:
    """Endpoints that recovered: what waited for the end of their pause is due `at` again."""
    resumed = 0
    for endpoint_id, until in held_until.items():
        resumed += (
            _pending([endpoint_id])
            .filter(next_attempt_at__gt=at, next_attempt_at__lte=until)
            .update(next_attempt_at=at)
        )
    return resumed


def backlog_park(*, endpoint_ids: Collection[int]) -> int:
    """Disabled endpoints: their pending deliveries are never due until they are enabled."""
    return _pending(endpoint_ids).exclude(next_attempt_at=None).update(next_attempt_at=None)


def backlog_unpark(*, endpoint_ids: Collection[int], at: datetime) -> int:
    """Enabled endpoints: their parked deliveries are due `at` (not those waiting behind an
    earlier delivery of their ordering key, which never are)."""
    parked = _pending(endpoint_ids).filter(next_attempt_at=None, waiting_on_key=False)
    return parked.update(next_attempt_at=at)
