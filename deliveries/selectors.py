"""Reads for the delivery path."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import astuple, dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Min, Q, QuerySet

from deliveries.models import Attempt, Delivery, ReplayJob
from subscriptions.models import VERIFICATION_EVENT_TYPE, Endpoint, Tenant


def endpoint_pauses_subscribed(*, tenant_id: int, event_type_id: int) -> dict[int, datetime | None]:
    """Active endpoints of a tenant that want an event type (an endpoint with no types wants all),
    each with the end of its circuit's pause: None when its circuit is closed."""
    return dict(
        Endpoint.objects.filter(tenant_id=tenant_id, is_active=True)
        .filter(Q(event_types__isnull=True) | Q(event_types=event_type_id))
        .values_list("id", "circuit_open_until")
        .distinct()
    )


def endpoint_channels_of(*, endpoint_ids: list[int]) -> dict[int, list[str]]:
    """The channels each of these endpoints listens on."""
    return dict(Endpoint.objects.filter(id__in=endpoint_ids).values_list("id", "channels"))


def endpoint_filters_subscribed(*, tenant_id: int, event_type_id: int) -> dict[int, str]:
    """The filters of a tenant's active endpoints that want an event type and have one."""
    return dict(
        Endpoint.objects.filter(tenant_id=tenant_id, is_active=True)
        .exclude(filter="")
        .filter(Q(event_types__isnull=True) | Q(event_types=event_type_id))
        .values_list("id", "filter")
        .distinct()
    )


def deliveries_due(*, at: datetime) -> QuerySet[Delivery]:
    """Pending deliveries whose time has come, not held by a live lease, to active endpoints.

    Deliveries to an endpoint whose circuit is open wait, except that once its cooldown ended,
    one of them may go as a probe (see `deliveries_flowing`).
    """
    held = Q(is_active=False) | Q(circuit_open_until__gt=at)
    return _due(at).exclude(endpoint_id__in=Endpoint.objects.filter(held).values("id"))


def deliveries_flowing(*, at: datetime) -> QuerySet[Delivery]:
    """Due deliveries to endpoints whose circuit is closed: any number may go at once."""
    held = Q(is_active=False) | Q(circuit_open_until__isnull=False)
    return _due(at).exclude(endpoint_id__in=Endpoint.objects.filter(held).values("id"))


def _due(at: datetime) -> QuerySet[Delivery]:
    # Endpoints are filtered with NOT IN (a small hashed list), not a join, so that the claim
    # can walk the partial due index in order (see bulk.deliveries_lease_due).
    return Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=at).filter(
        Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=at)
    )


def endpoint_ids_to_probe(*, at: datetime) -> QuerySet[Endpoint]:
    """Active endpoints whose circuit cooldown has ended: each may send one delivery."""
    return Endpoint.objects.filter(is_active=True, circuit_open_until__lte=at)


def deliveries_failed_since(*, endpoint: Endpoint, since: datetime) -> QuerySet[Delivery]:
    """The endpoint's dead letters created at or after `since`."""
    return Delivery.objects.filter(
        endpoint=endpoint, status=Delivery.Status.FAILED, created_at__gte=since
    )


STALLED_JOB_AFTER = timedelta(seconds=30)


def replay_jobs_stalled(*, at: datetime) -> list[int]:
    """Replay jobs still queued well after they were created: their start message was lost."""
    return list(
        ReplayJob.objects.filter(
            status=ReplayJob.Status.QUEUED, created_at__lt=at - STALLED_JOB_AFTER
        ).values_list("id", flat=True)
    )


def deliveries_backlog(*, at: datetime) -> tuple[int, datetime | None]:
    """How many pending deliveries are due at `at`, and since when the oldest of them is due.

    Both come from one range scan of the partial due index (pending rows only), so finished
    deliveries cost nothing however many there are. Leased deliveries count: they are not
    delivered yet.
    """
    backlog = Delivery.objects.filter(
        status=Delivery.Status.PENDING, next_attempt_at__lte=at
    ).aggregate(due=Count("*"), oldest=Min("next_attempt_at"))
    return backlog["due"], backlog["oldest"]


@dataclass(frozen=True)
class Backlog:
    """A tenant's pending deliveries, each counted once, by what they wait for.

    `due` includes those a worker is sending right now (they are not delivered yet).
    """

    due: int = 0  # may go now
    scheduled: int = 0  # due later: a retry waiting out its backoff
    held: int = 0  # their endpoint's circuit is open
    parked: int = 0  # their endpoint is disabled
    waiting: int = 0  # behind an earlier delivery of their ordering key
    unverified: int = 0  # their endpoint has not echoed its ownership challenge yet

    @property
    def total(self) -> int:
        return sum(astuple(self))

    def __add__(self, other: Backlog) -> Backlog:
        return Backlog(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))


def _backlog_counts(at: datetime) -> dict[str, Count]:
    """The conditional counts behind `Backlog`, over pending deliveries joined to their endpoint.

    The conditions exclude one another in this order: waiting on a key (whatever the endpoint's
    state: the key holds it first), parked, held for an ownership challenge (never due: only
    an active endpoint's unverified backlog is), held by a circuit, then due now or later.
    """
    free = Q(waiting_on_key=False)
    active = free & Q(endpoint__is_active=True)
    unverified = active & Q(next_attempt_at__isnull=True)
    closed = active & (
        Q(endpoint__circuit_open_until__isnull=True) | Q(endpoint__circuit_open_until__lte=at)
    )
    return {
        "due": Count("id", filter=closed & Q(next_attempt_at__lte=at)),
        "scheduled": Count("id", filter=closed & Q(next_attempt_at__gt=at)),
        "held": Count(
            "id",
            filter=active & Q(endpoint__circuit_open_until__gt=at, next_attempt_at__isnull=False),
        ),
        "parked": Count("id", filter=free & Q(endpoint__is_active=False)),
        "waiting": Count("id", filter=Q(waiting_on_key=True)),
        "unverified": Count("id", filter=unverified),
    }


def backlogs_by_tenant(
    *, tenants: QuerySet[Tenant] | Collection[int], at: datetime
) -> dict[int, Backlog]:
    """The backlog of each of `tenants` (a queryset or ids) at `at`, by tenant id, in one query;
    a tenant without pending deliveries is missing.

    Reads the pending deliveries of the tenants' endpoints only, on the partial pending index
    (delivery_endpoint_due_idx), never the finished ones.
    """
    tenant_ids = tenants if isinstance(tenants, QuerySet) else list(tenants)
    counts = _backlog_counts(at)
    rows = (
        Delivery.objects.filter(status=Delivery.Status.PENDING, endpoint__tenant__in=tenant_ids)
        .order_by()
        .values_list("endpoint__tenant_id")
        .annotate(**counts)
        .values_list("endpoint__tenant_id", *counts)
    )
    return {
        tenant_id: Backlog(**dict(zip(counts, numbers, strict=True)))
        for tenant_id, *numbers in rows
    }


def backlog_and_counts(
    deliveries: QuerySet[Delivery], /, *, at: datetime, **extra: Count
) -> tuple[Backlog, dict[str, int]]:
    """The backlog at `at` of `deliveries` (pending ones, in some scope), and the `extra`
    counts over the same rows, in one query on the partial pending index."""
    counts = _backlog_counts(at)
    row = deliveries.order_by().aggregate(**counts, **extra)
    return Backlog(**{name: row[name] for name in counts}), {name: row[name] for name in extra}


def endpoint_backlog(*, endpoint_id: int, at: datetime) -> Backlog:
    """One endpoint's backlog at `at`, on the partial pending index alone."""
    pending = Delivery.objects.filter(status=Delivery.Status.PENDING, endpoint_id=endpoint_id)
    return backlog_and_counts(pending, at=at)[0]


def dead_letters_count() -> int:
    """The size of the dead-letter queue: an index-only count of failed rows, never the table."""
    return Delivery.objects.filter(status=Delivery.Status.FAILED).count()


def endpoints_disabled_count() -> int:
    return Endpoint.objects.filter(is_active=False).count()


def endpoint_dead_letters_count(*, endpoint_id: int, cap: int) -> int:
    """The endpoint's dead letters, counted up to `cap` (on delivery_dead_letter_idx)."""
    failed = Delivery.objects.filter(endpoint_id=endpoint_id, status=Delivery.Status.FAILED)
    return failed.order_by()[:cap].count()


def deliveries_overdue(*, at: datetime, late_by: timedelta) -> QuerySet[Delivery]:
    """Deliveries due `late_by` or longer before `at` that no worker has taken: workers are behind.

    Deliveries held behind an open circuit or a disabled endpoint are not due (deliveries.holds),
    and those to an endpoint that sets its own pace (a rate limit, or slow enough for the slow
    lane) wait by design: neither counts, or one tenant's receiver would keep the alert raised and
    hide a real outage behind it.
    """
    paced = (
        Q(is_active=False)
        | Q(circuit_open_until__gt=at)
        | Q(is_slow=True)
        | Q(rate_limit__isnull=False)
    )
    return (
        _due(at)
        .filter(next_attempt_at__lte=at - late_by)
        .exclude(endpoint_id__in=Endpoint.objects.filter(paced).values("id"))
    )


def deliveries_overdue_since(*, at: datetime, late_by: timedelta) -> datetime | None:
    """When the oldest overdue delivery fell due; None when none is (see `deliveries_overdue`).

    One ordered walk of the partial due index that stops at the first row found.
    """
    overdue = deliveries_overdue(at=at, late_by=late_by).order_by("next_attempt_at")
    return overdue.values_list("next_attempt_at", flat=True).first()


def pending_test_sends_count(*, tenant_id: int) -> int:
    """The tenant's test deliveries not attempted yet, to endpoints that are active (a disabled
    endpoint's test waits for ever and must not hold a place). Read on delivery_test_pending_idx.
    """
    return Delivery.objects.filter(
        status=Delivery.Status.PENDING,
        next_trigger=Attempt.Trigger.TEST,
        endpoint__tenant_id=tenant_id,
        endpoint__is_active=True,
    ).count()


ATTEMPT_POLL_SECONDS = 0.1


def attempts_wait(*, delivery_ids: list[int], seconds: float) -> dict[int, Attempt]:
    """The latest attempt of each delivery, by delivery id, waiting up to `seconds` for workers
    to make them; those not attempted by then are missing. Polls the attempts' delivery index."""
    deadline = time.monotonic() + seconds
    while True:
        attempts = {
            attempt.delivery_id: attempt
            for attempt in Attempt.objects.filter(delivery_id__in=delivery_ids).order_by("number")
        }
        if len(attempts) == len(set(delivery_ids)) or time.monotonic() >= deadline:
            return attempts
        time.sleep(min(ATTEMPT_POLL_SECONDS, max(0.0, deadline - time.monotonic())))


def challenge_pending_id(*, endpoint_id: int) -> int | None:
    """The endpoint's ownership challenge waiting for its echo (the newest), if any; read among
    the endpoint's pending deliveries only."""
    pending = Delivery.objects.filter(
        endpoint_id=endpoint_id,
        status=Delivery.Status.PENDING,
        event__event_type__name=VERIFICATION_EVENT_TYPE,
    )
    return pending.order_by("-id").values_list("id", flat=True).first()
