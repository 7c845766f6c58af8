"""Writes on the delivery path: create deliveries, claim due ones, record what happened."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from deliveries.bulk import DeliveryChange, attempts_insert, deliveries_apply
from deliveries.dispatch import dispatch_replay_job, wake_workers
from deliveries.models import Attempt, Delivery, ReplayJob
from deliveries.retry import Action, Decision
from deliveries.selectors import (
    deliveries_due,
    deliveries_failed_since,
)
from subscriptions.models import Endpoint
from subscriptions.services import endpoint_disable
from webhooks.models import Event


def delivery_create_test(*, event: Event, endpoint: Endpoint) -> Delivery:
    """A test delivery of `event` to `endpoint` alone, for the caller to attempt at once.

    It falls due a minute later, so workers attempt it only if the caller never does.
    """
    return Delivery.objects.create(
        event=event,
        endpoint=endpoint,
        next_attempt_at=timezone.now() + timedelta(minutes=1),
        next_trigger=Attempt.Trigger.TEST,
    )


@dataclass(frozen=True)
class Claim:
    token: str
    expires_at: datetime
    deliveries: list[Delivery]


def deliveries_claim_due(*, limit: int) -> Claim:
    """Lease up to `limit` due deliveries; concurrent callers never get the same one."""
    now = timezone.now()
    return _claim(deliveries_due(at=now).order_by("next_attempt_at"), limit=limit, now=now)


def deliveries_claim(*, delivery_ids: list[int]) -> Claim:
    """Lease these pending, unleased deliveries now, whether or not they are due yet."""
    now = timezone.now()
    free = Delivery.objects.filter(
        id__in=delivery_ids, status=Delivery.Status.PENDING, endpoint__is_active=True
    ).filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
    return _claim(free.order_by("id"), limit=len(delivery_ids), now=now)


def _claim(candidates: QuerySet[Delivery], *, limit: int, now: datetime) -> Claim:
    token = uuid.uuid4().hex
    expires_at = now + timedelta(seconds=settings.WEBHOOKS_LEASE_SECONDS)
    with transaction.atomic():
        ids = list(
            candidates.select_for_update(skip_locked=True, of=("self",)).values_list(
                "id", flat=True
            )[:limit]
        )
        Delivery.objects.filter(id__in=ids).update(leased_by=token, lease_expires_at=expires_at)
    deliveries = list(
        Delivery.objects.filter(id__in=ids)
        .select_related("event__event_type")
        .order_by("next_attempt_at", "id")
    )
    # Fetched once each rather than joined per row: their secrets are decrypted on load.
    endpoints = Endpoint.objects.in_bulk({delivery.endpoint_id for delivery in deliveries})
    for delivery in deliveries:
        delivery.endpoint = endpoints[delivery.endpoint_id]
    return Claim(token=token, expires_at=expires_at, deliveries=deliveries)


def deliveries_release(*, claim: Claim, delivery_ids: list[int]) -> None:
    """Give back leased deliveries that were not attempted, so any worker may take them at once."""
    Delivery.objects.filter(id__in=delivery_ids, leased_by=claim.token).update(
        leased_by="", lease_expires_at=None
    )


@dataclass(frozen=True)
class Outcome:
    delivery: Delivery
    attempt: Attempt
    decision: Decision


def deliveries_record(*, claim: Claim, outcomes: list[Outcome]) -> None:
    """Store the attempts and move each delivery on, in one transaction of a few statements.

    A delivery whose lease was lost meanwhile keeps its attempt but is left to its new holder.
    """
    now = timezone.now()
    with transaction.atomic():
        attempts_insert([outcome.attempt for outcome in outcomes])
        deliveries_apply(
            [_delivery_change(outcome, now) for outcome in outcomes], lease_token=claim.token
        )
        _update_endpoint_health(outcomes, now)


def _delivery_change(outcome: Outcome, now: datetime) -> DeliveryChange:
    attempt, decision = outcome.attempt, outcome.decision
    retrying = decision.action is Action.RETRY
    if retrying:
        status = Delivery.Status.PENDING
    elif decision.action is Action.SUCCEED:
        status = Delivery.Status.SUCCEEDED
    else:
        status = Delivery.Status.FAILED
    return DeliveryChange(
        delivery_id=outcome.delivery.id,
        status=status,
        attempt_count=attempt.number,
        last_attempt_at=attempt.started_at,
        last_response_status=attempt.response_status,
        last_error=attempt.error_message,
        next_attempt_at=now + timedelta(seconds=decision.delay or 0) if retrying else None,
        finished_at=None if retrying else now,
    )


def _update_endpoint_health(outcomes: list[Outcome], now: datetime) -> None:
    """Track each endpoint's run of failures; disable it on 410 or after the failure window."""
    succeeded = {o.delivery.endpoint_id for o in outcomes if o.decision.action is Action.SUCCEED}
    failed = {o.delivery.endpoint_id for o in outcomes} - succeeded
    if succeeded:
        Endpoint.objects.filter(id__in=succeeded).update(failing_since=None, last_success_at=now)
    if not failed:
        return
    Endpoint.objects.filter(id__in=failed, failing_since__isnull=True).update(failing_since=now)
    gone = {
        o.delivery.endpoint_id for o in outcomes if o.decision.action is Action.DISABLE_ENDPOINT
    }
    if gone:
        endpoint_disable(endpoint_ids=gone, reason="The endpoint answered 410 Gone.")
    days = settings.WEBHOOKS_DISABLE_AFTER_DAYS
    if days > 0:
        stale = Endpoint.objects.filter(
            id__in=failed - gone, failing_since__lte=now - timedelta(days=days)
        ).values_list("id", flat=True)
        endpoint_disable(
            endpoint_ids=stale,
            reason=f"Disabled after {days:g} days of failed deliveries without a success.",
        )


REPLAYABLE = (Delivery.Status.FAILED, Delivery.Status.SUCCEEDED)


def deliveries_replay(
    *,
    deliveries: QuerySet[Delivery],
    trigger: str = Attempt.Trigger.REPLAY,
    job: ReplayJob | None = None,
) -> int:
    """Queue each finished delivery in `deliveries` for one more attempt, now.

    Pending deliveries are left alone: they are already queued. A replay is a single attempt (as in
    Svix): if it fails, the delivery goes straight back to the dead-letter queue. Its attempt
    history is kept, the new attempt is marked with `trigger`, and it carries the same
    `webhook-id`. Returns how many deliveries were queued; workers wake once the caller commits.
    """
    queued = deliveries.filter(status__in=REPLAYABLE).update(
        status=Delivery.Status.PENDING,
        next_attempt_at=timezone.now(),
        next_trigger=trigger,
        finished_at=None,
        leased_by="",
        lease_expires_at=None,
        replay_job=job,
    )
    if queued:
        transaction.on_commit(wake_workers)
    return queued


REPLAY_CHUNK = 500


def replay_job_start(*, endpoint: Endpoint, since: datetime, requested_by: str = "") -> ReplayJob:
    """Start replaying every failed delivery of `endpoint` created since `since`, in the background.

    The job counts its deliveries now and runs once the caller commits; if the broker is down, the
    sweeper starts it later.
    """
    total = deliveries_failed_since(endpoint=endpoint, since=since).count()
    job = ReplayJob.objects.create(
        tenant_id=endpoint.tenant_id,
        endpoint=endpoint,
        since=since,
        requested_by=requested_by,
        total=total,
    )
    transaction.on_commit(functools.partial(dispatch_replay_job, job.id))
    return job


def replay_job_run(*, job_id: int) -> ReplayJob:
    """Replay the job's deliveries in chunks, counting progress as it goes. Safe to run twice."""
    started = ReplayJob.objects.filter(id=job_id, status=ReplayJob.Status.QUEUED).update(
        status=ReplayJob.Status.RUNNING
    )
    job = ReplayJob.objects.select_related("endpoint").get(id=job_id)
    if not started:
        return job
    ids = list(
        deliveries_failed_since(endpoint=job.endpoint, since=job.since)
        .filter(created_at__lte=job.created_at)
        .order_by("id")
        .values_list("id", flat=True)
    )
    for start in range(0, len(ids), REPLAY_CHUNK):
        with transaction.atomic():
            queued = deliveries_replay(
                deliveries=Delivery.objects.filter(id__in=ids[start : start + REPLAY_CHUNK]),
                job=job,
            )
            ReplayJob.objects.filter(id=job_id).update(replayed=F("replayed") + queued)
    ReplayJob.objects.filter(id=job_id).update(
        status=ReplayJob.Status.DONE, finished_at=timezone.now()
    )
    job.refresh_from_db()
    return job
