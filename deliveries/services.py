"""Writes on the delivery path: create deliveries, claim due ones, record what happened."""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Case, F, Q, QuerySet, Value, When
from django.utils import timezone

from config.signals import send_robustly
from deliveries.bulk import (
    DeliveryChange,
    attempts_insert,
    deliveries_apply,
    deliveries_extend_lease,
    deliveries_lease_due,
    endpoints_mark_healthy,
)
from deliveries.circuit import cooldown_seconds, failure_streak
from deliveries.claims import Claim, Outcome
from deliveries.dispatch import dispatch_replay_job, wake_workers
from deliveries.fair import claim_counted, shared_batch_size, sharing
from deliveries.holds import backlog_hold, backlog_resume
from deliveries.hourly_stats import hourly_stats_add
from deliveries.loading import deliveries_load
from deliveries.models import Attempt, Delivery, ReplayJob
from deliveries.ordering import followers_lease, keys_advance_and_wake
from deliveries.retry import Action
from deliveries.selectors import (
    deliveries_due,
    deliveries_failed_since,
    endpoint_ids_to_probe,
)
from deliveries.signals import attempts_recorded, deliveries_dead_lettered
from deliveries.validators import replay_since_checked
from deliveries.verification import deliveries_hold_unverified, endpoints_verify_echoed
from subscriptions.models import Endpoint
from subscriptions.services import endpoint_disable
from webhooks.models import Event

logger = logging.getLogger(__name__)


def delivery_create_test(*, event: Event, endpoint: Endpoint) -> Delivery:
    """A test delivery of `event` to `endpoint` alone, due at once: a worker sends it.

    Test sends take the workers' path like every delivery, never the web process's: a receiver
    that hangs holds a worker's slow lane, not a web worker. Workers wake once the caller commits.
    """
    delivery = Delivery.objects.create(
        event=event,
        endpoint=endpoint,
        next_attempt_at=timezone.now(),
        next_trigger=Attempt.Trigger.TEST,
    )
    transaction.on_commit(wake_workers)
    return delivery


def deliveries_claim_due(*, limit: int, skip_endpoint_ids: Collection[int] = ()) -> Claim:
    """Lease up to `limit` due deliveries; concurrent callers never get the same one.

    For each endpoint whose circuit cooldown has ended, the claim includes one probe delivery,
    and pushes the endpoint's cooldown on by an attempt's length so that no other worker probes
    it meanwhile. Deliveries to `skip_endpoint_ids` are left for later. Under contention, with
    fair claims, a claim takes a smaller batch (`deliveries.fair.shared_batch_size`), so that each
    worker comes back to share sooner. Room left in the batch
    goes to the deliveries waiting right behind the keyed heads it holds, after them, in key
    order: the batch sends each only once the one before it in its key succeeded.
    """
    now = timezone.now()
    lease = _new_lease(now)
    fair = settings.WEBHOOKS_FAIR_CLAIMS
    if fair and sharing():
        limit = shared_batch_size(limit)
    leased = deliveries_lease_due(
        limit=limit, at=now, skip_endpoint_ids=list(skip_endpoint_ids), **lease
    )
    ids = leased.delivery_ids
    if leased.probes_ready:
        ids += _lease_probes(now, skip_endpoint_ids, **lease)
    claim = _claim_loaded(ids, **lease)
    # The batch's room goes to what waits right behind the keyed heads it holds.
    followers = followers_lease(claim.deliveries, room=limit - len(ids), **lease)
    deliveries = claim.deliveries + deliveries_load(followers) if followers else claim.deliveries
    if fair:
        claim_counted(leased=len(deliveries), limit=limit)
    return Claim(claim.token, claim.expires_at, deliveries, full=len(deliveries) >= limit)


def _lease_probes(
    now: datetime, skip_endpoint_ids: Collection[int], *, token: str, expires_at: datetime
) -> list[int]:
    """Lease the oldest due delivery of each endpoint ready for a probe."""
    with transaction.atomic():
        endpoint_ids = list(
            endpoint_ids_to_probe(at=now)
            .exclude(id__in=skip_endpoint_ids)
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:PROBES_PER_CLAIM]
        )
        probes = []
        for endpoint_id in endpoint_ids:
            oldest = (
                deliveries_due(at=now)
                .filter(endpoint_id=endpoint_id)
                .order_by("next_attempt_at")
                .select_for_update(skip_locked=True, of=("self",))
                .values_list("id", flat=True)
                .first()
            )
            if oldest is not None:
                probes.append(oldest)
        probe_ends = now + timedelta(seconds=settings.WEBHOOKS_TIMEOUT + PROBE_MARGIN_SECONDS)
        Endpoint.objects.filter(id__in=endpoint_ids).update(circuit_open_until=probe_ends)
        Delivery.objects.filter(id__in=probes).update(leased_by=token, lease_expires_at=expires_at)
    # After the commit: holding a long backlog takes a while, and must not keep the locks above.
    for endpoint_id in endpoint_ids:
        backlog_hold(endpoint_id=endpoint_id, until=probe_ends, except_ids=probes)
    return probes


PROBES_PER_CLAIM = 10
# A healthy endpoint's last_success_at is rewritten at most this often, not by every batch.
LAST_SUCCESS_PRECISION = timedelta(seconds=1)
PROBE_MARGIN_SECONDS = 5


def deliveries_claim(*, delivery_ids: list[int]) -> Claim:
    """Lease these pending, unleased deliveries now, whether or not they are due yet; not those
    waiting behind an earlier delivery of their ordering key."""
    now = timezone.now()
    lease = _new_lease(now)
    free = Delivery.objects.filter(
        id__in=delivery_ids,
        status=Delivery.Status.PENDING,
        waiting_on_key=False,
        endpoint__is_active=True,
    ).filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
    with transaction.atomic():
        ids = list(
            free.order_by("id").select_for_update(skip_locked=True, of=("self",))
            .values_list("id", flat=True)
        )  # fmt: skip
        Delivery.objects.filter(id__in=ids).update(
            leased_by=lease["token"], lease_expires_at=lease["expires_at"]
        )
    return _claim_loaded(ids, **lease)


def _new_lease(now: datetime) -> dict:
    return {
        "token": uuid.uuid4().hex,
        "expires_at": now + timedelta(seconds=settings.WEBHOOKS_LEASE_SECONDS),
    }


def _claim_loaded(ids: list[int], *, token: str, expires_at: datetime) -> Claim:
    # An endpoint that has not echoed its ownership challenge gets that and nothing else.
    deliveries = deliveries_hold_unverified(deliveries_load(ids), token=token)
    return Claim(token=token, expires_at=expires_at, deliveries=deliveries)


def deliveries_release(*, claim: Claim, delivery_ids: list[int]) -> None:
    """Give back leased deliveries that were not attempted, so any worker may take them at once."""
    released = Delivery.objects.filter(id__in=delivery_ids, leased_by=claim.token).update(
        leased_by="", lease_expires_at=None
    )
    if released:
        transaction.on_commit(wake_workers)


def deliveries_record(
    *, claim: Claim, outcomes: list[Outcome], lease_ends: datetime | None = None
) -> None:
    """Store the attempts and move each delivery on, in one transaction of a few statements.

    A delivery whose lease was lost meanwhile keeps its attempt but is left to its new holder.
    Every path that attempts deliveries records them here, so this is where they are counted
    for /metrics, once stored.

    If the database connection drops, this reconnects and records again, until the lease ends
    (`lease_ends`, by default the claim's): what was sent is not sent again for want of a
    record. A retry first looks for the first outcome's attempt, so a commit that went through
    but whose acknowledgement was lost is not stored twice. Raises the last error once the
    lease has ended, or at once if the error was not a lost connection.
    """
    if not outcomes:
        return
    give_up_at = lease_ends or claim.expires_at
    failures = 0
    while True:
        try:
            if failures and _recorded_already(outcomes):
                # Stored; only the dead-letter check waiting for the commit was lost with it.
                _check_dead_letters_on_commit(outcomes)
            else:
                _record_once(claim, outcomes)
            break
        except Exception as error:
            failures += 1
            if not _reconnected(error) or (
                failures >= RECORD_TRIES and timezone.now() >= give_up_at
            ):
                raise
            logger.warning("Lost the database while recording; recording again", exc_info=True)
            time.sleep(min(0.05 * 2**failures, 1.0))
    keyed = [(o.delivery.endpoint_id, o.delivery.ordering_key) for o in outcomes]
    if any(key for _, key in keyed):
        # Once committed: an emit that saw these still pending advances their keys itself once
        # it commits; one that commits after this sees them finished (deliveries.ordering).
        transaction.on_commit(functools.partial(keys_advance_and_wake, keyed))
    send_robustly(attempts_recorded, sender=Delivery, outcomes=outcomes)


# Tries at least this many times to record, even when the lease has ended meanwhile.
RECORD_TRIES = 3


def _record_once(claim: Claim, outcomes: list[Outcome]) -> None:
    now = timezone.now()
    with transaction.atomic():
        attempts_insert([outcome.attempt for outcome in outcomes])
        deliveries_apply(
            [_delivery_change(outcome, now) for outcome in outcomes], lease_token=claim.token
        )
        _update_endpoint_health(outcomes, now)
        endpoints_verify_echoed(outcomes, at=now)
        _check_dead_letters_on_commit(outcomes)
        hourly_stats_add(outcomes)


def _recorded_already(outcomes: list[Outcome]) -> bool:
    """Whether a record that failed had committed after all (it stores all or nothing). An
    attempt's start time, to the microsecond, is this worker's own: no other attempt shares it."""
    first = outcomes[0].attempt
    return Attempt.objects.filter(
        delivery_id=first.delivery_id, number=first.number, started_at=first.started_at
    ).exists()


def _reconnected(error: Exception) -> bool:
    """After a failed statement: True if `error` says the connection was lost (or failed in
    passing), and the connection is now closed so that the next query opens a fresh one; False
    for any other error, or inside an outer transaction, which a new connection cannot resume."""
    lost = (
        OperationalError, InterfaceError,
        connection.Database.OperationalError,  # type: ignore[attr-defined]  # every backend's
        connection.Database.InterfaceError,  # type: ignore[attr-defined]
    )  # fmt: skip
    if connection.in_atomic_block or not isinstance(error, lost):
        return False
    connection.close()
    return True


@dataclass(frozen=True)
class Renewal:
    expires_at: datetime
    held_ids: set[int]  # the deliveries the claim still holds: only these may be attempted


def deliveries_renew(*, claim: Claim, delivery_ids: list[int]) -> Renewal | None:
    """Extend the claim's lease on `delivery_ids` by WEBHOOKS_LEASE_SECONDS from now, where the
    claim still holds them (its heartbeat); None when the database could not be reached, after
    closing a lost connection so that the next call opens a fresh one."""
    expires_at = _new_lease(timezone.now())["expires_at"]
    try:
        held = deliveries_extend_lease(
            delivery_ids=sorted(delivery_ids), token=claim.token, expires_at=expires_at
        )
    except Exception as error:
        if not _reconnected(error):
            raise
        logger.warning("Lost the database while renewing a lease", exc_info=True)
        return None
    return Renewal(expires_at=expires_at, held_ids=held)


def _check_dead_letters_on_commit(outcomes: list[Outcome]) -> None:
    """Endpoints that got new dead letters are checked against the alert threshold once these
    are stored; the others are not looked at."""
    give_up, disable = Action.GIVE_UP, Action.DISABLE_ENDPOINT  # compared by identity: cheaper
    dead_lettered = {
        outcome.delivery.endpoint_id
        for outcome in outcomes
        if outcome.decision.action is give_up or outcome.decision.action is disable
    }
    if dead_lettered:
        transaction.on_commit(
            functools.partial(
                send_robustly, deliveries_dead_lettered, sender=Delivery, endpoint_ids=dead_lettered
            )
        )


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
    """Track each endpoint's failures: its circuit breaker, its lane, and disabling it.

    An endpoint is disabled on 410 or after the failure window (WEBHOOKS_DISABLE_AFTER_DAYS).
    """
    by_endpoint: dict[int, list[Outcome]] = {}
    for outcome in outcomes:
        by_endpoint.setdefault(outcome.delivery.endpoint_id, []).append(outcome)
    _update_lanes(by_endpoint)
    healthy = [
        endpoint_id
        for endpoint_id, results in by_endpoint.items()
        if results[-1].decision.action is Action.SUCCEED
    ]
    recovered = endpoints_mark_healthy(
        endpoint_ids=sorted(healthy), at=now, unchanged_for=LAST_SUCCESS_PRECISION
    )
    if recovered:
        backlog_resume(held_until=recovered, at=now)
    failing = sorted(set(by_endpoint) - set(healthy))  # in id order: no deadlock between workers
    for endpoint_id in failing:
        _record_failures(endpoint_id, by_endpoint[endpoint_id], now)
    if failing:
        _disable_failed_endpoints(outcomes, set(failing), now)


def _update_lanes(by_endpoint: dict[int, list[Outcome]]) -> None:
    slow_ms = settings.WEBHOOKS_SLOW_ATTEMPT_SECONDS * 1000
    slow = {
        endpoint_id
        for endpoint_id, results in by_endpoint.items()
        if any(
            o.attempt.duration_ms >= slow_ms or o.attempt.error_kind == Attempt.ErrorKind.TIMEOUT
            for o in results
        )
    }
    if slow:
        Endpoint.objects.filter(id__in=slow, is_slow=False).update(is_slow=True)
    # Endpoints seen slow when claimed: one marked slow since then is put right by a later batch.
    fast_again = {
        endpoint_id
        for endpoint_id, results in by_endpoint.items()
        if endpoint_id not in slow and results[0].delivery.endpoint.is_slow
    }
    if fast_again:
        Endpoint.objects.filter(id__in=fast_again, is_slow=True).update(is_slow=False)


def _record_failures(endpoint_id: int, results: list[Outcome], now: datetime) -> None:
    endpoint = (
        Endpoint.objects.select_for_update()
        .only("consecutive_failures", "failing_since", "circuit_open_until")
        .get(id=endpoint_id)
    )
    streak = failure_streak(
        endpoint.consecutive_failures,
        [o.decision.action is Action.SUCCEED for o in results],
    )
    pause = cooldown_seconds(
        streak,
        threshold=settings.WEBHOOKS_CIRCUIT_FAILURES,
        base=settings.WEBHOOKS_CIRCUIT_COOLDOWN,
    )
    if pause is not None and endpoint.circuit_open_until is None:
        logger.warning(
            "Circuit opened for endpoint=%s after %s failed attempts in a row",
            endpoint_id,
            streak,
        )
    endpoint.consecutive_failures = streak
    endpoint.circuit_open_until = None if pause is None else now + timedelta(seconds=pause)
    endpoint.failing_since = endpoint.failing_since or now
    endpoint.save(update_fields=["consecutive_failures", "circuit_open_until", "failing_since"])
    if endpoint.circuit_open_until is not None:
        backlog_hold(endpoint_id=endpoint_id, until=endpoint.circuit_open_until)


def _disable_failed_endpoints(outcomes: list[Outcome], failing: set[int], now: datetime) -> None:
    gone = {
        o.delivery.endpoint_id for o in outcomes if o.decision.action is Action.DISABLE_ENDPOINT
    }
    if gone:
        endpoint_disable(endpoint_ids=gone, reason="The endpoint answered 410 Gone.")
    days = settings.WEBHOOKS_DISABLE_AFTER_DAYS
    if days > 0:
        stale = Endpoint.objects.filter(
            id__in=failing - gone, failing_since__lte=now - timedelta(days=days)
        ).values_list("id", flat=True)
        endpoint_disable(
            endpoint_ids=stale,
            reason=f"Disabled after {days:g} days of failed deliveries without a success.",
        )


def endpoint_rate_slot(*, endpoint_id: int, per_second: int) -> datetime:
    """Reserve the next send to a rate-limited endpoint; returns when it may start.

    The endpoint's row serializes the reservations of every worker, so the limit holds however
    many send to it.
    """
    with transaction.atomic():
        endpoint = Endpoint.objects.select_for_update().only("rate_slot_at").get(id=endpoint_id)
        now = timezone.now()
        slot = max(now, endpoint.rate_slot_at or now)
        endpoint.rate_slot_at = slot + timedelta(seconds=1 / per_second)
        endpoint.save(update_fields=["rate_slot_at"])
    return slot


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
    `webhook-id`. A delivery with an ordering key goes back to its place in the key: the key's
    later deliveries wait until it is finished again. Returns how many deliveries were queued;
    workers wake once the caller commits.
    """
    replayable = deliveries.filter(status__in=REPLAYABLE)
    keys = set(
        replayable.exclude(ordering_key="").values_list("endpoint_id", "ordering_key").distinct()
    )
    queued = replayable.update(
        status=Delivery.Status.PENDING,
        # Keyed ones wait until keys_advance puts them at the head of their key.
        waiting_on_key=Case(When(ordering_key="", then=Value(False)), default=Value(True)),
        next_attempt_at=Case(When(ordering_key="", then=Value(timezone.now())), default=None),
        next_trigger=trigger,
        finished_at=None,
        leased_by="",
        lease_expires_at=None,
        replay_job=job,
    )
    if queued:
        transaction.on_commit(wake_workers)
    if keys:
        transaction.on_commit(functools.partial(keys_advance_and_wake, keys))
    return queued


REPLAY_CHUNK = 500


def replay_job_start(*, endpoint: Endpoint, since: datetime, requested_by: str = "") -> ReplayJob:
    """Start replaying every failed delivery of `endpoint` created since `since`, in the background.

    The job counts its deliveries now and runs once the caller commits; if the broker is down, the
    sweeper starts it later. Raises ValidationError for a `since` that
    `deliveries.validators.replay_since_checked` refuses (out of range, or in the future).
    """
    since = replay_since_checked(since)
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
    """Replay the job's deliveries in chunks, counting progress as it goes. Safe to run twice.

    Whatever goes wrong marks the job `failed` with the reason, for the dashboard and the API to
    show; the chunks queued before it stay queued. Never raises for a job that exists.
    """
    started = ReplayJob.objects.filter(id=job_id, status=ReplayJob.Status.QUEUED).update(
        status=ReplayJob.Status.RUNNING
    )
    if started:
        try:
            _replay_job_chunks(job_id)
        except Exception as error:
            logger.exception("Replay job %s failed", job_id)
            _replay_job_fail(job_id, error)
    return ReplayJob.objects.select_related("endpoint").get(id=job_id)


def _replay_job_chunks(job_id: int) -> None:
    job = ReplayJob.objects.select_related("endpoint").get(id=job_id)
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


def _replay_job_fail(job_id: int, error: Exception) -> None:
    reason = f"{type(error).__name__}: {error}".replace("\x00", "")[:REPLAY_FAILURE_CHARS]
    ReplayJob.objects.filter(id=job_id).update(
        status=ReplayJob.Status.FAILED, failure_reason=reason, finished_at=timezone.now()
    )


REPLAY_FAILURE_CHARS = 1000
