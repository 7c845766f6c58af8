"""Operational alerts: each condition is told once, until it clears.

Two conditions are watched here (a disabled endpoint is told by
operations.endpoint_notifications, once per disabling):

- an endpoint's dead letters pass WEBHOOKS_DEAD_LETTER_ALERT_THRESHOLD: checked by the batch that
  made new dead letters, for their endpoints only; re-armed by the sweeper once a replay or a
  purge brings them back to the threshold or fewer;
- deliveries due more than WEBHOOKS_OVERDUE_ALERT_SECONDS ago that no worker has taken: checked
  and cleared by the sweeper, and by beat itself (`alerts_watch`), since the sweeper is a task
  and tasks need a worker.

An open alert is a row of OperationalAlert; raising one is an insert that its constraint lets
through once, so workers racing on the same condition tell people once, and a restart forgets
nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.utils import timezone

from deliveries.selectors import (
    deliveries_due,
    deliveries_overdue,
    deliveries_overdue_since,
    endpoint_dead_letters_count,
)
from operations.models import OperationalAlert
from operations.notifications import (
    COUNTED_UP_TO,
    notify_dead_letters_over_threshold,
    notify_deliveries_overdue,
    notify_deliveries_overdue_recovered,
)
from subscriptions.models import Endpoint
from webhooks.wire import iso_time

logger = logging.getLogger(__name__)

Kind = OperationalAlert.Kind


def alert_raise(
    *, kind: str, subject: str = "", details: dict[str, Any]
) -> OperationalAlert | None:
    """Open an alert; None when one of this kind and subject is open already.

    Concurrent callers meet on the open-alert constraint: exactly one of them gets the alert.
    """
    try:
        with transaction.atomic():
            return OperationalAlert.objects.create(kind=kind, subject=subject, details=details)
    except IntegrityError:
        return None


def alert_clear(*, alert: OperationalAlert, at: datetime) -> bool:
    """Close an open alert, re-arming its condition; False when another caller closed it first."""
    return bool(OperationalAlert.objects.filter(id=alert.id, cleared_at=None).update(cleared_at=at))


def dead_letters_check(*, endpoint_ids: Collection[int], **_: object) -> None:
    """Alert on each of these endpoints whose dead letters are now past the threshold.

    For the endpoints that just got new dead letters, after their batch commits. An endpoint
    with an open alert costs nothing more; another costs one count that stops at threshold + 1.
    Never raises.
    """
    threshold = settings.WEBHOOKS_DEAD_LETTER_ALERT_THRESHOLD
    if threshold <= 0 or not endpoint_ids:
        return
    try:
        alerted = set(
            OperationalAlert.objects.filter(
                kind=Kind.DEAD_LETTERS_OVER_THRESHOLD,
                subject__in=[str(endpoint_id) for endpoint_id in endpoint_ids],
                cleared_at=None,
            ).values_list("subject", flat=True)
        )
        for endpoint_id in sorted(set(endpoint_ids)):
            if str(endpoint_id) in alerted:
                continue
            if endpoint_dead_letters_count(endpoint_id=endpoint_id, cap=threshold + 1) > threshold:
                _raise_dead_letters(endpoint_id, threshold)
    except Exception:
        logger.exception("Could not check the dead letters of endpoints %s", sorted(endpoint_ids))


def _raise_dead_letters(endpoint_id: int, threshold: int) -> None:
    endpoint = Endpoint.objects.select_related("tenant").filter(id=endpoint_id).first()
    if endpoint is None:
        return  # deleted meanwhile, and its dead letters with it
    count = endpoint_dead_letters_count(endpoint_id=endpoint_id, cap=COUNTED_UP_TO)
    alert = alert_raise(
        kind=Kind.DEAD_LETTERS_OVER_THRESHOLD,
        subject=str(endpoint_id),
        details={"dead_letters": count, "threshold": threshold, "endpoint_url": endpoint.url},
    )
    if alert is None:
        return  # another worker saw it first and tells people
    logger.warning(
        "Dead letters over threshold for endpoint=%s: %s (threshold %s)",
        endpoint_id,
        count,
        threshold,
    )
    notify_dead_letters_over_threshold(endpoint=endpoint, dead_letters=count, threshold=threshold)


def alerts_sweep(*, at: datetime, anything_due: bool, **_: object) -> None:
    """The sweeper's part: raise or clear the overdue alert, re-arm dead-letter alerts.

    `anything_due` is whether the sweep found due deliveries: if none is due, none is overdue,
    and the check costs no query. Only raised alerts are looked at again. Never raises.
    """
    try:
        open_alerts = list(OperationalAlert.objects.filter(cleared_at=None))
    except Exception:
        logger.exception("Could not read the open operational alerts")
        return
    for check, kind in (
        (_overdue_check, Kind.DELIVERIES_OVERDUE),
        (_dead_letters_rearm, Kind.DEAD_LETTERS_OVER_THRESHOLD),
    ):
        try:
            check([alert for alert in open_alerts if alert.kind == kind], at, anything_due)
        except Exception:
            logger.exception("Could not check the %s alert", kind)


def _overdue_check(open_alerts: list[OperationalAlert], at: datetime, anything_due: bool) -> None:
    seconds = settings.WEBHOOKS_OVERDUE_ALERT_SECONDS
    if seconds <= 0:
        return
    late_by = timedelta(seconds=seconds)
    oldest = deliveries_overdue_since(at=at, late_by=late_by) if anything_due else None
    if oldest is None:
        for alert in open_alerts:
            if alert_clear(alert=alert, at=at):
                logger.warning("Deliveries no longer overdue (since %s)", iso_time(alert.raised_at))
                notify_deliveries_overdue_recovered(overdue_since=alert.raised_at, recovered_at=at)
        return
    if open_alerts:
        return
    count = deliveries_overdue(at=at, late_by=late_by).order_by()[:COUNTED_UP_TO].count()
    details = {"overdue_deliveries": count, "oldest_due_at": iso_time(oldest)}
    if alert_raise(kind=Kind.DELIVERIES_OVERDUE, details=details) is None:
        return
    logger.warning("Deliveries overdue: %s, the oldest due since %s", count, iso_time(oldest))
    notify_deliveries_overdue(deliveries=count, oldest_due_at=oldest, late_by=seconds)


def _dead_letters_rearm(open_alerts: list[OperationalAlert], at: datetime, _: bool) -> None:
    threshold = settings.WEBHOOKS_DEAD_LETTER_ALERT_THRESHOLD
    if threshold <= 0:
        return
    for alert in open_alerts:
        endpoint_id = int(alert.subject)
        if endpoint_dead_letters_count(endpoint_id=endpoint_id, cap=threshold + 1) > threshold:
            continue
        if alert_clear(alert=alert, at=at):
            logger.info("Dead-letter alert re-armed for endpoint=%s", endpoint_id)


def alerts_watch(*, interval: float, stop: threading.Event) -> None:
    """Check the alerts every `interval` seconds until `stop` is set. Never raises.

    Beat runs this on a thread of its own process (config.celery): the sweeper task needs a
    worker to run it, and the overdue alert must go out when every worker is down. When workers
    run, both check; the alert rows keep people from hearing twice.
    """
    while not stop.wait(interval):
        close_old_connections()  # after a database restart, reconnect instead of failing forever
        now = timezone.now()
        try:
            due = deliveries_due(at=now).exists()
        except Exception:
            logger.exception("Could not check for due deliveries")
            continue
        alerts_sweep(at=now, anything_due=due)
    connection.close()


def alerts_watch_start(*, interval: float) -> threading.Event:
    """Start `alerts_watch` on a daemon thread; set the returned event to stop it."""
    stop = threading.Event()
    threading.Thread(
        target=alerts_watch,
        kwargs={"interval": interval, "stop": stop},
        name="operational-alerts",
        daemon=True,
    ).start()
    return stop
