"""The dashboard's status vocabulary: derived from a delivery, shown the same everywhere."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from deliveries.models import Attempt, Delivery
from deliveries.verification import NO_ECHO


@dataclass(frozen=True)
class Pill:
    label: str
    icon: str
    css: str
    meaning: str


PENDING = Pill("Pending", "…", "pending", "Queued for its first attempt.")
SENDING = Pill("Sending", "⇡", "sending", "A worker is delivering it right now.")
RETRYING = Pill("Retrying", "↻", "retrying", "Failed so far; the next attempt is scheduled.")
DELIVERED = Pill("Delivered", "✓", "delivered", "The receiver answered 2xx.")
DEAD = Pill("Dead", "✕", "dead", "Every attempt failed. Replay it once the receiver is fixed.")
WAITING = Pill(
    "Waiting on key",
    "◷",
    "waiting",
    "Waits behind an earlier delivery of its ordering key.\n"
    "It goes once that one is delivered or dead.",
)

# Each status filter matches the deliveries `delivery_pill` shows with that status (Sending is
# a moment, not a filter): waiting deliveries are neither Pending nor Retrying.
FILTERS: dict[str, dict[str, Any]] = {
    "pending": {"status": Delivery.Status.PENDING, "attempt_count": 0, "waiting_on_key": False},
    "retrying": {
        "status": Delivery.Status.PENDING,
        "attempt_count__gt": 0,
        "waiting_on_key": False,
    },
    "waiting": {"status": Delivery.Status.PENDING, "waiting_on_key": True},
    "delivered": {"status": Delivery.Status.SUCCEEDED},
    "dead": {"status": Delivery.Status.FAILED},
}


def delivery_pill(delivery: Delivery, now: datetime) -> Pill:
    if delivery.status == Delivery.Status.SUCCEEDED:
        return DELIVERED
    if delivery.status == Delivery.Status.FAILED:
        return DEAD
    if delivery.waiting_on_key:
        return WAITING
    if delivery.lease_expires_at and delivery.lease_expires_at > now:
        return SENDING
    return RETRYING if delivery.attempt_count else PENDING


LAST_RESULT_LABELS = (
    # First: a failed transformation's message may quote the payload or the expression.
    ("the transformation", "transform"),
    ("refused", "refused"),
    ("no response", "timeout"),
    ("not received within", "timeout"),
    ("tls", "TLS"),
    ("private or reserved", "blocked"),
    ("connection", "connection"),
)


def last_result(delivery: Delivery) -> str:
    """A short human summary of the last attempt: `503`, `timeout`, `refused`, `—`."""
    if delivery.last_response_status and delivery.last_error.startswith(NO_ECHO):
        return "no echo"
    if delivery.last_response_status:
        return str(delivery.last_response_status)
    error = delivery.last_error.lower()
    for needle, label in LAST_RESULT_LABELS:
        if needle in error:
            return label
    return "error" if error else "—"


ERROR_HINTS: dict[str, str] = {
    Attempt.ErrorKind.TIMEOUT: "The receiver did not answer in time: answer 2xx first, then work.",
    Attempt.ErrorKind.CONNECTION: "Nothing accepted the connection: is the receiver up?",
    Attempt.ErrorKind.TLS: "Certificate expired or hostname mismatch.",
    Attempt.ErrorKind.BLOCKED: "The URL resolves to a private address; Hookline will not call it.",
    Attempt.ErrorKind.HTTP_STATUS: "The receiver answered, but not with 2xx.",
    Attempt.ErrorKind.INVALID_RESPONSE: "The receiver's answer was not valid HTTP, or did not "
    "echo its ownership challenge.",
    Attempt.ErrorKind.INVALID_REQUEST: "The request could not be built: check the custom headers.",
    Attempt.ErrorKind.INTERNAL: "Hookline failed to build the request; see the worker log.",
    Attempt.ErrorKind.TRANSFORM: "The endpoint's transformation failed, so nothing was sent: "
    "fix it on the endpoint's page, then replay.",
}
