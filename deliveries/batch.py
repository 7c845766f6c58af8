"""A worker's unit of work: claim a batch of due deliveries, POST each, record the outcomes."""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from config import tracing
from deliveries import transport
from deliveries.attempt_spans import attempt_traced
from deliveries.claims import Claim, Outcome
from deliveries.lanes import SlowLane
from deliveries.models import Attempt, Delivery
from deliveries.retry import Action, decide, delivery_outcome
from deliveries.services import (
    deliveries_claim,
    deliveries_claim_due,
    deliveries_record,
    deliveries_release,
    deliveries_renew,
    endpoint_rate_slot,
)
from deliveries.takeover import send_with_takeover
from deliveries.transport import TransportResult
from deliveries.verification import echo_judged, is_challenge
from subscriptions.models import Endpoint
from webhooks.formats import JSON, Body
from webhooks.signing import secret_key
from webhooks.transformations import TransformError
from webhooks.wire import TRACEPARENT, message, redacted, signed_headers

logger = logging.getLogger(__name__)

# Stop starting attempts this long before the lease ends, so a slow last one still fits.
LEASE_MARGIN_SECONDS = 1.0
# While a batch is sent, what was sent is recorded at least this often: a worker that dies
# mid-batch leaves only its last moments' sends to be made again.
RECORD_INTERVAL_SECONDS = 0.25


def lease_renewal_seconds() -> float:
    """How often a batch in flight renews its lease (its heartbeat).

    An attempt starts only if the lease, as last renewed, outlasts it (WEBHOOKS_TIMEOUT plus
    LEASE_MARGIN_SECONDS); renewing twice within that slack lets one renewal fail without the
    sends pausing. A third of the lease at most, so a lease survives two failed renewals.
    """
    lease = settings.WEBHOOKS_LEASE_SECONDS
    slack = lease - settings.WEBHOOKS_TIMEOUT - LEASE_MARGIN_SECONDS
    return max(0.1, min(slack / 2, lease / 3))


def deliver_until_idle(
    *,
    limit: int,
    budget_seconds: float,
    while_draining: Callable[[], None] | None = None,
    before_last_claim: Callable[[], None] | None = None,
    on_full_batch: Callable[[], None] | None = None,
    on_budget_spent: Callable[[], None] | None = None,
    lane: SlowLane | None = None,
) -> int:
    """Deliver due batches until none is left or `budget_seconds` ran out; returns how many.

    Claiming the next batch in the same process, rather than through a new task per batch, keeps
    the broker out of the hot loop, also while events trickle in faster than they are delivered:
    a part-full batch is followed by another claim, not by the end of the task. The caller's hooks
    keep wake-ups coalesced: `while_draining` runs after each batch that found work (this worker
    will claim again), and `before_last_claim` once a claim came back empty, before the claim
    that confirms there is nothing left, so that a commit after it queues a wake-up of its own.
    `on_full_batch` runs when a claim came back full, so that another worker starts on the rest
    of the backlog; `on_budget_spent` when the budget runs out with work possibly left.
    """
    deadline = time.monotonic() + budget_seconds
    delivered = 0
    confirming = False
    while True:
        claimed = deliver_due_batch(limit=limit, on_full_batch=on_full_batch, lane=lane)
        delivered += claimed
        if not claimed:
            if confirming or before_last_claim is None:
                return delivered
            before_last_claim()
            confirming = True
            continue
        confirming = False
        if time.monotonic() > deadline:
            if on_budget_spent is not None:
                on_budget_spent()
            return delivered
        if while_draining is not None:
            while_draining()


def deliver_due_batch(
    *,
    limit: int,
    on_full_batch: Callable[[], None] | None = None,
    lane: SlowLane | None = None,
) -> int:
    """Attempt up to `limit` due deliveries once each; returns how many were claimed.

    `on_full_batch` runs before the attempts when the claim came back full, so another worker can
    start on the rest of the backlog in parallel. With a `lane`, deliveries to endpoints marked
    slow go to its side threads, and endpoints it is busy with are not claimed.
    """
    skip = lane.busy_endpoint_ids() if lane is not None else frozenset()
    claim = deliveries_claim_due(limit=limit, skip_endpoint_ids=skip)
    if not claim.deliveries:
        return 0
    claimed = len(claim.deliveries)
    if on_full_batch is not None and claim.full:
        on_full_batch()
    if lane is not None:
        claim = _hand_slow_endpoints_to(lane, claim)
    deliver_claimed(claim, lane=lane)
    return claimed


def _hand_slow_endpoints_to(lane: SlowLane, claim: Claim) -> Claim:
    """Give the lane the deliveries to slow and rate-limited endpoints (sends to those wait);
    return the claim's other deliveries."""
    slow: dict[int, list[Delivery]] = {}
    rest = []
    for delivery in claim.deliveries:
        if delivery.endpoint.is_slow or delivery.endpoint.rate_limit:
            slow.setdefault(delivery.endpoint_id, []).append(delivery)
        else:
            rest.append(delivery)
    for endpoint_id, deliveries in slow.items():
        part = dataclasses.replace(claim, deliveries=deliveries)
        lane.submit(endpoint_id, functools.partial(deliver_claimed, part))
    return dataclasses.replace(claim, deliveries=rest)


def deliver_now(delivery_id: int) -> Attempt | None:
    """Attempt one pending delivery in this process, now; None if another worker holds it."""
    claim = deliveries_claim(delivery_ids=[delivery_id])
    outcomes = deliver_claimed(claim)
    return outcomes[0].attempt if outcomes else None


def deliver_claimed(claim: Claim, *, lane: SlowLane | None = None) -> list[Outcome]:
    """Attempt the claimed deliveries while the lease lasts, record them, release the rest.

    Outcomes are recorded as they come, every RECORD_INTERVAL_SECONDS, and the lease of what is
    not recorded yet is renewed while the batch is in flight, so that a worker that dies leaves
    little to send again, and soon. With a `lane`, the sends run on a sender thread that this
    thread watches: if one stalls on a receiver for WEBHOOKS_SLOW_ATTEMPT_SECONDS, that sender
    is left to finish and record its one delivery alone, and a fresh sender goes on with the
    rest of the batch.
    """
    sends = Sends(claim)
    if lane is None:
        sends.drain()
    else:
        send_with_takeover(sends, lane)
    sends.record()
    outcomes = sends.outcomes
    done = {outcome.delivery.id for outcome in outcomes} | sends.handed_off
    leftover = [d.id for d in claim.deliveries if d.id not in done]
    if leftover:
        deliveries_release(claim=claim, delivery_ids=leftover)
    return outcomes


class Sends:
    """The sends of one claim, in order; shared by its sender threads when one hands over.

    Only the thread that claimed (and owns the database connection) records and renews, through
    `keep_up`; sender threads only send.
    """

    def __init__(self, claim: Claim) -> None:
        self.claim = claim
        now = time.monotonic()
        lease_ends_at = now + _seconds_left(claim)
        self.lease_ends = claim.expires_at
        self.stop_at = _last_start_before(lease_ends_at)
        self.queue = collections.deque(claim.deliveries)
        self.outcomes: list[Outcome] = []
        self.handed_off: set[int] = set()  # in flight on a stalled sender, which records them
        self.lock = threading.Lock()
        self._unrecorded: list[Outcome] = []
        self._recorded_ids: set[int] = set()
        self._lost: set[int] = set()  # taken by another worker after this lease ran out
        self._recorded_at = now
        self._renew_at = lease_ends_at - settings.WEBHOOKS_LEASE_SECONDS + lease_renewal_seconds()
        self._keys: dict[int, list[bytes]] = {}
        # By (event, payload format, transformation): a failed transformation is kept too, so
        # a runaway one is run once per batch, not once per delivery.
        self._bodies: dict[tuple[int, str, str], Body | TransformError] = {}
        self._failures_in_a_row: dict[int, int] = {}
        self._left_alone: set[int] = set()  # endpoints whose other deliveries wait for later
        # Per ordering key: whether the batch's last delivery of it succeeded (False while in
        # flight). A delivery that waited behind it goes only then (deliveries.ordering).
        self._key_clear: dict[tuple[int, str], bool] = {}

    def keep_up(self) -> None:
        """Renew the lease when due, and record what was sent since the last record if that was
        RECORD_INTERVAL_SECONDS ago (called by the claim's thread between sends, or as it
        watches the sender)."""
        now = time.monotonic()
        if self._unrecorded and now - self._recorded_at >= RECORD_INTERVAL_SECONDS:
            self.record()
        if now >= self._renew_at:
            self.renew()

    def record(self) -> None:
        """Record the outcomes not recorded yet."""
        with self.lock:
            outcomes, self._unrecorded = self._unrecorded, []
        self._recorded_at = time.monotonic()
        deliveries_record(claim=self.claim, outcomes=outcomes, lease_ends=self.lease_ends)
        self._recorded_ids.update(outcome.delivery.id for outcome in outcomes)

    def renew(self) -> None:
        """Extend the lease of the deliveries not recorded yet; drop from the queue any that
        another worker took meanwhile. If the database cannot be reached, the sends stop once
        the lease, as last renewed, could end during an attempt."""
        asked_at = time.monotonic()
        self._renew_at = asked_at + lease_renewal_seconds()
        ids = [d.id for d in self.claim.deliveries if d.id not in self._recorded_ids]
        renewal = deliveries_renew(claim=self.claim, delivery_ids=ids) if ids else None
        if renewal is None:
            return
        with self.lock:
            self.lease_ends = renewal.expires_at
            self.stop_at = _last_start_before(asked_at + settings.WEBHOOKS_LEASE_SECONDS)
            if len(renewal.held_ids) < len(ids):
                self._lost.update(set(ids) - renewal.held_ids)
                self.queue = collections.deque(d for d in self.queue if d.id not in self._lost)

    def stop(self) -> None:
        """Start no more sends: the rest of the batch waits for its lease to end."""
        with self.lock:
            self.queue.clear()

    def next(self) -> Delivery | None:
        """The next delivery to send, or None when the batch is done or out of lease time."""
        with self.lock:
            while self.queue and time.monotonic() <= self.stop_at:
                delivery = self.queue.popleft()
                endpoint = delivery.endpoint
                if endpoint.id in self._left_alone:
                    continue
                if self._failures_in_a_row.get(endpoint.id, 0) >= _give_up_after(endpoint):
                    continue  # left for later: its circuit is about to open, or it hangs
                if delivery.ordering_key and not self._takes_turn(delivery):
                    continue  # the one before it in its key did not succeed: it waits on
                return delivery
            return None

    def _takes_turn(self, delivery: Delivery) -> bool:
        """Whether a keyed delivery may go now (call with `lock` held): a head always; one that
        was waiting behind it once the batch's previous delivery of its key has succeeded."""
        key = (delivery.endpoint_id, delivery.ordering_key)
        if delivery.waiting_on_key and not self._key_clear.get(key, False):
            return False
        self._key_clear[key] = False
        return True

    def send(self, delivery: Delivery) -> Outcome:
        """Attempt one delivery, inside its span when tracing is on. Never raises: what went
        wrong is the outcome."""
        spans = tracing.spans
        if spans is None:
            return self._send(delivery, "")
        return attempt_traced(spans, delivery, self._send)

    def _send(self, delivery: Delivery, traceparent: str) -> Outcome:
        endpoint = delivery.endpoint
        try:
            if endpoint.id not in self._keys:
                self._keys[endpoint.id] = [secret_key(s) for s in endpoint.signing_secrets()]
            started_at, started = timezone.now(), time.monotonic()
            body = self._body(delivery)
            if isinstance(body, TransformError):
                took_ms = (time.monotonic() - started) * 1000
                return _transform_failed(delivery, body, started_at, took_ms)
            return _attempt(delivery, body, self._keys[endpoint.id], traceparent)
        except Exception as error:
            # One broken delivery must not take the rest of the batch down with it.
            logger.exception("Could not attempt delivery=%s", delivery.id)
            return _attempt_failed_internally(delivery, error)

    def _body(self, delivery: Delivery) -> Body | TransformError:
        event = delivery.event
        event_type = event.event_type.name
        endpoint = delivery.endpoint
        # A challenge goes as Hookline builds it, in JSON whatever the endpoint's format and
        # transformation: one handshake for every receiver, which must find the challenge there.
        if endpoint.verified_at is None and is_challenge(delivery):
            body_key = (delivery.event_id, JSON, "")
        else:
            body_key = (delivery.event_id, endpoint.payload_format, endpoint.transformation)
        if body_key not in self._bodies:
            try:
                self._bodies[body_key] = message(event, event_type, *body_key[1:])
            except TransformError as error:
                self._bodies[body_key] = error
        return self._bodies[body_key]

    def add(self, outcome: Outcome) -> None:
        """Keep an outcome for the batch's record (call with `lock` held)."""
        self.outcomes.append(outcome)
        self._unrecorded.append(outcome)
        endpoint_id = outcome.delivery.endpoint_id
        self._failures_in_a_row[endpoint_id] = _failures_after(
            self._failures_in_a_row.get(endpoint_id, 0), outcome
        )
        if outcome.delivery.ordering_key:
            key = (endpoint_id, outcome.delivery.ordering_key)
            self._key_clear[key] = outcome.decision.action is Action.SUCCEED

    def hand_off(self, delivery: Delivery) -> None:
        """`delivery` stalls: its sender records it alone; its endpoint's others wait for later."""
        self.handed_off.add(delivery.id)
        self._left_alone.add(delivery.endpoint_id)

    def drain(self) -> None:
        """Send the batch on this thread, keeping up its record and lease between sends."""
        while True:
            self.keep_up()
            delivery = self.next()
            if delivery is None:
                return
            rate = delivery.endpoint.rate_limit
            if rate and not self._wait_for_rate_slot(delivery, rate):
                return  # its slot falls after the lease: this and the rest wait for later
            outcome = self.send(delivery)
            with self.lock:
                self.add(outcome)

    def _wait_for_rate_slot(self, delivery: Delivery, per_second: int) -> bool:
        """Wait for the endpoint's next send slot, keeping up the record and lease meanwhile;
        False if the slot falls beyond what a lease can cover, or the lease was not kept."""
        endpoint = delivery.endpoint
        slot = endpoint_rate_slot(endpoint_id=endpoint.id, per_second=per_second)
        starts_at = time.monotonic() + (slot - timezone.now()).total_seconds()
        if starts_at > _last_start_before(time.monotonic() + settings.WEBHOOKS_LEASE_SECONDS):
            return False
        while (now := time.monotonic()) < starts_at:
            time.sleep(min(starts_at - now, lease_renewal_seconds()))
            self.keep_up()
        with self.lock:
            return time.monotonic() <= self.stop_at and delivery.id not in self._lost


def _give_up_after(endpoint: Endpoint) -> int:
    """Failures in a row after which a batch leaves the endpoint's other deliveries alone."""
    return max(1, settings.WEBHOOKS_CIRCUIT_FAILURES - endpoint.consecutive_failures)


def _failures_after(failures: int, outcome: Outcome) -> int:
    if outcome.decision.action is Action.SUCCEED:
        return 0
    if outcome.attempt.error_kind == Attempt.ErrorKind.TIMEOUT:
        # One hang is enough: the rest of the batch would each wait as long.
        return settings.WEBHOOKS_CIRCUIT_FAILURES + 1
    return failures + 1


def _attempt_failed_internally(delivery: Delivery, error: Exception) -> Outcome:
    result = transport.TransportResult(
        duration_ms=0.0,
        error_kind=Attempt.ErrorKind.INTERNAL,
        error_message=f"Hookline could not build the request: {type(error).__name__}: {error}",
    )
    return _outcome(delivery, timezone.now(), {}, result)


def _transform_failed(
    delivery: Delivery, error: TransformError, started_at: datetime, took_ms: float
) -> Outcome:
    """The attempt of a delivery whose transformation failed: no request is sent, and it is
    retried as any failed attempt, so that fixing the transformation recovers it."""
    result = transport.TransportResult(
        duration_ms=took_ms, error_kind=Attempt.ErrorKind.TRANSFORM, error_message=str(error)
    )
    return _outcome(delivery, started_at, {}, result)


def _attempt(delivery: Delivery, body: Body, keys: list[bytes], traceparent: str) -> Outcome:
    """POST the delivery; with a `traceparent` (WEBHOOKS_TRACEPARENT), that header too, in place
    of any custom header of the trace context's."""
    endpoint = delivery.endpoint
    started_at = timezone.now()
    headers = signed_headers(
        msg_id=delivery.event.public_id,
        timestamp=int(started_at.timestamp()),
        body=body.content,
        keys=keys,
        extra=endpoint.headers,
        content_type=body.content_type,
        traceparent=traceparent,
    )
    result = transport.post(endpoint.url, body.content, headers)
    stored = redacted(headers)
    if traceparent:
        stored[TRACEPARENT] = traceparent  # Hookline's own, not a custom header to mask
    return _outcome(delivery, started_at, stored, result)


def _outcome(
    delivery: Delivery, started_at: datetime, headers: dict[str, str], result: TransportResult
) -> Outcome:
    """The attempt and the decision it leads to; `headers` as stored (custom values masked)."""
    endpoint = delivery.endpoint
    number = delivery.attempt_count + 1
    if endpoint.verified_at is None and is_challenge(delivery):
        result = echo_judged(delivery, result)
    attempt = Attempt(
        delivery=delivery,
        number=number,
        trigger=delivery.next_trigger,
        started_at=started_at,
        duration_ms=result.duration_ms,
        url=endpoint.url,
        request_headers=headers,
        response_status=result.status,
        response_headers=result.headers,
        response_body=result.body,
        error_kind=result.error_kind,
        error_message=result.error_message,
    )
    decision = decide(
        attempt_number=number,
        # An invalid response is no answer, whatever its status (a challenge not echoed).
        status=None if result.error_kind == Attempt.ErrorKind.INVALID_RESPONSE else result.status,
        error_kind=result.error_kind,
        retry_after=result.retry_after,
        schedule=settings.WEBHOOKS_RETRY_SCHEDULE,
        retry_client_errors=settings.WEBHOOKS_RETRY_CLIENT_ERRORS,
        single_attempt=delivery.next_trigger != Attempt.Trigger.SCHEDULED,
    )
    logger.info(
        "attempt delivery=%s endpoint=%s event=%s number=%s status=%s error=%s duration_ms=%.1f",
        delivery.id,
        endpoint.id,
        delivery.event.public_id,
        number,
        result.status,
        result.error_kind or "-",
        result.duration_ms,
        extra={
            "delivery_id": delivery.id,
            "endpoint_id": endpoint.id,
            "event_id": delivery.event.public_id,
            "event_type": delivery.event.event_type.name,
            "attempt": number,
            "status": result.status,
            "error_kind": result.error_kind,
            "duration_ms": result.duration_ms,
            "outcome": delivery_outcome(decision.action),
        },
    )
    return Outcome(delivery=delivery, attempt=attempt, decision=decision)


def _seconds_left(claim: Claim) -> float:
    return (claim.expires_at - timezone.now()).total_seconds()


def _last_start_before(lease_ends_at: float) -> float:
    """The last moment (monotonic) an attempt may start and still end within the lease."""
    return lease_ends_at - settings.WEBHOOKS_TIMEOUT - LEASE_MARGIN_SECONDS
