"""Ownership challenges on the engine's side: sending one, judging its echo, and holding what an
unverified endpoint must not receive yet (subscriptions.verification owns the endpoint's state).

An unverified endpoint receives its challenge and nothing else. Events emitted to it meanwhile are
stored due, as for any endpoint: the claim that takes one parks it (`next_attempt_at` NULL, never
due), with the rest of the endpoint's backlog, under the endpoint's row lock; the echo makes them
all due again. Parking them at emit would race with the echo: an emit that read the endpoint as
unverified and committed after the echo had let the backlog go would leave its delivery parked
for ever (docs/decisions/0018-endpoint-verification.md).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from deliveries.claims import Outcome
from deliveries.dispatch import wake_workers
from deliveries.holds import backlog_park, backlog_unpark
from deliveries.models import Attempt, Delivery
from deliveries.retry import Action
from deliveries.transport import TransportResult
from subscriptions.models import VERIFICATION_EVENT_TYPE, Endpoint, EventType
from subscriptions.verification import endpoint_verify
from webhooks.models import Event

logger = logging.getLogger(__name__)

NO_ECHO = "The response did not echo the challenge"
SUPERSEDED = "No longer needed: a newer challenge replaced it, or the endpoint was verified."


def is_challenge(delivery: Delivery) -> bool:
    """Whether the delivery is an ownership challenge. Only an unverified endpoint is sent one
    that counts: hot paths check the endpoint first, which is cheaper."""
    return delivery.event.event_type.name == VERIFICATION_EVENT_TYPE


def challenge_send(
    *, endpoint_id: int, tenant_id: int, challenge: str, is_active: bool, **_: object
) -> None:
    """Hold the endpoint's pending deliveries and queue its challenge, due at once (or, for a
    disabled endpoint, once it is enabled). A challenge it had not echoed yet is failed: only the
    newest one can verify it. Workers wake once the caller commits."""
    now = timezone.now()
    _challenges_supersede(endpoint_id, now)
    backlog_park(endpoint_ids=[endpoint_id])
    kind, _created = EventType.objects.get_or_create(
        name=VERIFICATION_EVENT_TYPE,
        defaults={"description": "An ownership challenge: echo data.challenge to be verified."},
    )
    payload = {"challenge": challenge}
    event = Event.objects.create(
        tenant_id=tenant_id,
        event_type=kind,
        payload=payload,
        payload_text=json.dumps(payload, separators=(",", ":")),
        created_at=now,
    )
    Delivery.objects.create(
        event=event, endpoint_id=endpoint_id, created_at=now,
        next_attempt_at=now if is_active else None,
    )  # fmt: skip
    if is_active:
        transaction.on_commit(wake_workers)


def _challenges_supersede(endpoint_id: int, now: datetime) -> None:
    """Fail the endpoint's pending challenges that no worker is sending right now."""
    Delivery.objects.filter(
        endpoint_id=endpoint_id,
        status=Delivery.Status.PENDING,
        event__event_type__name=VERIFICATION_EVENT_TYPE,
    ).filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)).update(
        status=Delivery.Status.FAILED,
        next_attempt_at=None,
        finished_at=now,
        last_error=SUPERSEDED,
        leased_by="",
        lease_expires_at=None,
        waiting_on_key=False,
    )


def backlog_release(*, endpoint_id: int, at: datetime, **_: object) -> None:
    """A verified endpoint: what waited for its echo is due at `at`, unless the endpoint is
    disabled (its backlog then waits for it to be enabled). Challenges still pending are failed:
    there is nothing left for them to prove."""
    _challenges_supersede(endpoint_id, at)
    if not Endpoint.objects.filter(id=endpoint_id, is_active=True).exists():
        return
    if backlog_unpark(endpoint_ids=[endpoint_id], at=at):
        transaction.on_commit(wake_workers)


def challenges_unpark(*, endpoint_id: int, at: datetime) -> int:
    """An unverified endpoint enabled again: only its challenge becomes due."""
    return Delivery.objects.filter(
        endpoint_id=endpoint_id,
        status=Delivery.Status.PENDING,
        next_attempt_at=None,
        waiting_on_key=False,
        event__event_type__name=VERIFICATION_EVENT_TYPE,
    ).update(next_attempt_at=at)


def deliveries_hold_unverified(deliveries: list[Delivery], *, token: str) -> list[Delivery]:
    """The claimed deliveries that may be sent: all but those to an endpoint that has not echoed
    its challenge yet (its challenge itself goes). Those endpoints' backlogs, the claimed
    deliveries among them, are parked until the echo; a claim of verified endpoints only pays
    for the check of one attribute per delivery."""
    unverified = {
        d.endpoint_id for d in deliveries if d.endpoint.verified_at is None and not is_challenge(d)
    }
    if not unverified:
        return deliveries
    held = _backlogs_hold(unverified, token)
    return [d for d in deliveries if d.endpoint_id not in held or is_challenge(d)]


def _backlogs_hold(endpoint_ids: set[int], token: str) -> set[int]:
    """Park the pending deliveries, challenges aside, of those of `endpoint_ids` still unverified;
    returns their ids. The endpoints' rows stay locked until the parking commits, so an echo
    recorded meanwhile lets go of what was parked (it updates the row first)."""
    now = timezone.now()
    with transaction.atomic():
        held = set(
            Endpoint.objects.select_for_update()
            .filter(id__in=sorted(endpoint_ids), verified_at=None)
            .values_list("id", flat=True)
        )
        # Not those another worker is sending: its own claim parks them, or it records them.
        ours_or_free = (
            Q(leased_by=token) | Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
        )
        parked = (
            Delivery.objects.filter(
                endpoint_id__in=held, status=Delivery.Status.PENDING, next_attempt_at__isnull=False
            )
            .filter(ours_or_free)
            .exclude(event__event_type__name=VERIFICATION_EVENT_TYPE)
            .update(next_attempt_at=None, leased_by="", lease_expires_at=None)
        )
    if parked:
        logger.info(
            "Held %s deliveries to endpoints %s until they echo their ownership challenge",
            parked,
            sorted(held),
        )
    return held


def echo_judged(delivery: Delivery, result: TransportResult) -> TransportResult:
    """A challenge's result as the retry policy must see it: a 2xx answer that does not echo the
    challenge is an invalid response, retried like any failure."""
    if result.status is None or not 200 <= result.status < 300:
        return result
    if echoes(result.body, challenge_of(delivery)):
        return result
    return dataclasses.replace(
        result,
        error_kind=Attempt.ErrorKind.INVALID_RESPONSE,
        error_message=f"{NO_ECHO} (HTTP {result.status}).",
    )


def echoes(body: str, challenge: str) -> bool:
    """Whether a response body echoes `challenge`: the body, whitespace around it stripped, is the
    challenge, or is a JSON object whose `challenge` member is."""
    if not challenge:
        return False
    text = body.strip()
    if text == challenge:
        return True
    if not text.startswith("{"):
        return False
    try:
        answer: Any = json.loads(text)
    except (ValueError, RecursionError):
        return False
    return isinstance(answer, dict) and answer.get("challenge") == challenge


def challenge_of(delivery: Delivery) -> str:
    payload = delivery.event.payload
    challenge = payload.get("challenge") if isinstance(payload, dict) else None
    return challenge if isinstance(challenge, str) else ""


def endpoints_verify_echoed(outcomes: list[Outcome], *, at: datetime) -> None:
    """Verify the endpoints whose challenge these outcomes delivered, echoed (call it in the
    transaction that records them)."""
    for outcome in outcomes:
        delivery = outcome.delivery
        if (
            outcome.decision.action is Action.SUCCEED
            and delivery.endpoint.verified_at is None
            and is_challenge(delivery)
        ):
            endpoint_verify(
                endpoint_id=delivery.endpoint_id, challenge=challenge_of(delivery), at=at
            )
