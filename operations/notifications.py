"""Telling people about delivery trouble: a signal, an email and the operational webhook each.

Every function here is called once per condition (operations.alerts decides when) and never
raises: a broken signal receiver, mail server or alerting URL is logged and must not take the
worker or the sweeper down with it.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from config.signals import send_robustly
from deliveries.models import Delivery
from deliveries.signals import (
    dead_letters_over_threshold,
    deliveries_overdue,
    deliveries_overdue_recovered,
)
from operations.endpoint_notifications import email_quietly, endpoint_recipients
from operations.operational_webhook import endpoint_summary, operational_webhook_send
from subscriptions.models import Endpoint
from webhooks.wire import iso_time

# Counts in notices stop here: counting a million dead letters exactly costs more than it tells.
COUNTED_UP_TO = 10_000


def notify_dead_letters_over_threshold(
    *, endpoint: Endpoint, dead_letters: int, threshold: int
) -> None:
    """Tell the tenant's members and the operators that the endpoint's dead letters pile up."""
    send_robustly(
        dead_letters_over_threshold,
        sender=Endpoint,
        endpoint=endpoint,
        dead_letters=dead_letters,
        threshold=threshold,
    )
    email_quietly(
        endpoint_recipients(endpoint),
        f"[Hookline] Dead letters piling up: {endpoint.url}",
        f"{_count(dead_letters)} deliveries to {endpoint.url} (tenant {endpoint.tenant.slug}) "
        f"failed every attempt and wait in the dead-letter queue: more than the alert threshold "
        f"of {threshold}.\n\n"
        "Fix the receiver, then replay them from the admin's Dead letters list, the dashboard "
        f"or `manage.py replay --endpoint {endpoint.id} --since <time>`. You will not be told "
        f"again until the queue is back to {threshold} or fewer.",
    )
    operational_webhook_send(
        event_type="operations.dead_letters_over_threshold",
        data={**endpoint_summary(endpoint), "dead_letters": dead_letters, "threshold": threshold},
    )


def notify_deliveries_overdue(*, deliveries: int, oldest_due_at: datetime, late_by: float) -> None:
    """Tell the operators that due deliveries are not being attempted: workers behind or down."""
    send_robustly(
        deliveries_overdue,
        sender=Delivery,
        deliveries=deliveries,
        oldest_due_at=oldest_due_at,
        late_by=late_by,
    )
    email_quietly(
        settings.WEBHOOKS_OPERATOR_EMAILS,
        "[Hookline] Deliveries overdue: the workers are behind or down",
        f"{_count(deliveries)} deliveries have been due for more than {late_by:g} s without an "
        f"attempt; the oldest since {iso_time(oldest_due_at)}.\n\n"
        "Check that Celery workers are running (celery -A config worker), can reach the broker "
        "and the database, and keep up with the load. You will be told when they catch up.",
    )
    operational_webhook_send(
        event_type="operations.deliveries_overdue",
        data={
            "overdue_deliveries": deliveries,
            "oldest_due_at": iso_time(oldest_due_at),
            "overdue_after_seconds": late_by,
        },
    )


def notify_deliveries_overdue_recovered(*, overdue_since: datetime, recovered_at: datetime) -> None:
    """Tell the operators that no delivery is overdue any more."""
    send_robustly(
        deliveries_overdue_recovered,
        sender=Delivery,
        overdue_since=overdue_since,
        recovered_at=recovered_at,
    )
    email_quietly(
        settings.WEBHOOKS_OPERATOR_EMAILS,
        "[Hookline] Deliveries caught up",
        f"No delivery is overdue any more (overdue since {iso_time(overdue_since)}).",
    )
    operational_webhook_send(
        event_type="operations.deliveries_overdue_recovered",
        data={"overdue_since": iso_time(overdue_since), "recovered_at": iso_time(recovered_at)},
    )


def _count(number: int) -> str:
    return f"{number:,} or more" if number >= COUNTED_UP_TO else f"{number:,}"
