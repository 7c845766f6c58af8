"""What an endpoint missed: the events since a time that it wants today but never got a delivery
of (it was disabled when they came, or added after them), sent to it now as new deliveries.

"Recover" replays an endpoint's failed deliveries; this creates the ones that never existed. An
event counts as wanted by the endpoint's event types and its filter as they are now. Hookline's
own test and challenge events are never sent again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from deliveries.bulk import event_filter_context
from deliveries.dispatch import wake_workers
from deliveries.models import Delivery
from subscriptions.filters import endpoints_matching
from subscriptions.models import TEST_EVENT_TYPE, VERIFICATION_EVENT_TYPE, Endpoint
from webhooks.models import Event

# Events looked at in one call; past it, the answer says where to go on from.
MISSING_LIMIT = 10_000


@dataclass(frozen=True)
class Missing:
    """What a call created: `queued` deliveries; when `more` is true, events from `next_since`
    on were not looked at yet (call again with it)."""

    queued: int
    more: bool
    next_since: datetime | None


def deliveries_create_missing(
    *, endpoint: Endpoint, since: datetime, limit: int = MISSING_LIMIT
) -> Missing:
    """Create a delivery to `endpoint` of each event of its tenant created from `since` to now,
    oldest first, that it wants and has no delivery of; wake the workers once they are stored.

    The endpoint's row is locked meanwhile, so two calls never create the same delivery twice.
    A delivery with an ordering key waits behind the key's pending deliveries, as at emit.
    """
    now = timezone.now()
    with transaction.atomic():
        endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
        looked_at = _missed(endpoint, since, now)[: limit + 1]
        events = list(looked_at.select_related("event_type", "tenant"))
        more = len(events) > limit
        next_since = events[limit].created_at if more else None
        wanted = _wanted(endpoint, events[:limit])
        created = Delivery.objects.bulk_create(_deliveries(endpoint, wanted, now))
        if any(delivery.next_attempt_at is not None for delivery in created):
            transaction.on_commit(wake_workers)
    return Missing(queued=len(created), more=more, next_since=next_since)


def _missed(endpoint: Endpoint, since: datetime, now: datetime) -> QuerySet[Event]:
    delivered = Delivery.objects.filter(event=OuterRef("pk"), endpoint=endpoint)
    events = (
        Event.objects.filter(
            tenant_id=endpoint.tenant_id, created_at__gte=since, created_at__lte=now
        )
        .exclude(event_type__name__in=(TEST_EVENT_TYPE, VERIFICATION_EVENT_TYPE))
        .exclude(Exists(delivered))
    )
    kinds = list(endpoint.event_types.values_list("id", flat=True))
    if kinds:  # none: it wants every type
        events = events.filter(event_type_id__in=kinds)
    return events.order_by("created_at", "id")


def _wanted(endpoint: Endpoint, events: list[Event]) -> list[Event]:
    if not endpoint.filter:
        return events
    candidates = [(endpoint.id, endpoint.filter)]
    return [e for e in events if endpoints_matching(candidates, event_filter_context(e))]


def _deliveries(endpoint: Endpoint, events: list[Event], now: datetime) -> list[Delivery]:
    pending_keys = set(
        Delivery.objects.filter(endpoint=endpoint, status=Delivery.Status.PENDING)
        .exclude(ordering_key="")
        .values_list("ordering_key", flat=True)
        .distinct()
    )
    due = max(now, endpoint.circuit_open_until or now)
    deliveries = []
    for event in events:
        key = event.ordering_key
        waits = bool(key) and key in pending_keys
        if key:
            pending_keys.add(key)
        deliveries.append(
            Delivery(
                event=event,
                endpoint=endpoint,
                created_at=now,
                ordering_key=key,
                waiting_on_key=waits,
                next_attempt_at=None if waits else due,
            )  # fmt: skip
        )
    return deliveries
