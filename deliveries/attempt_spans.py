"""Each attempt as a span, when tracing is on: what it carries, and the `traceparent` it sends.

The span is a child of the span that emitted the event (Event.traceparent, config.spans), so one
trace follows an event from the caller to every attempt at every endpoint, across processes.
Attribute names follow OpenTelemetry's semantic conventions where one exists (`http.*`,
`server.*`, `error.type`); the rest are Hookline's (`hookline.*`). The endpoint's full URL is left
out: receivers put tokens in query strings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.conf import settings

from deliveries.claims import Outcome
from deliveries.models import Attempt, Delivery
from deliveries.retry import delivery_outcome

if TYPE_CHECKING:
    from config.spans import Spans

# Sends a delivery with the `traceparent` header to add ("" for none).
Send = Callable[[Delivery, str], Outcome]


def attempt_traced(spans: Spans, delivery: Delivery, send: Send) -> Outcome:
    """Make the attempt through `send` inside its span, and record on the span what came of it."""
    with spans.attempt(delivery.event.traceparent, _attributes(delivery)) as span:
        header = spans.traceparent(span) if settings.WEBHOOKS_TRACEPARENT else ""
        outcome = send(delivery, header)
        attempt = outcome.attempt
        spans.ended(span, _outcome_attributes(outcome), error=attempt.error_kind)
    return outcome


def _attributes(delivery: Delivery) -> dict[str, str | int]:
    endpoint = delivery.endpoint
    return {
        **_server(endpoint.url),
        "hookline.delivery_id": delivery.id,
        "hookline.endpoint_id": endpoint.id,
        "hookline.tenant_id": endpoint.tenant_id,
        "hookline.event_id": delivery.event.public_id,
        "hookline.event_type": delivery.event.event_type.name,
        "hookline.attempt": delivery.attempt_count + 1,
        "hookline.trigger": delivery.next_trigger,
        "http.request.method": "POST",
    }


def _server(url: str) -> dict[str, str | int]:
    """`server.address` and `server.port` of an endpoint's URL; none for one that does not parse
    (its attempt fails, and says why)."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return {}
    return {"server.address": parts.hostname or "", "server.port": port}


def _outcome_attributes(outcome: Outcome) -> dict[str, str | int]:
    attempt = outcome.attempt
    attributes: dict[str, str | int] = {
        "hookline.outcome": delivery_outcome(outcome.decision.action),
    }
    if attempt.response_status is not None:
        attributes["http.response.status_code"] = attempt.response_status
    if attempt.error_kind:
        attributes["hookline.error_kind"] = attempt.error_kind
        attributes["error.type"] = _error_type(attempt)
    return attributes


def _error_type(attempt: Attempt) -> str:
    """As the HTTP conventions have it: the status code of a failed answer, else what failed."""
    if attempt.error_kind == Attempt.ErrorKind.HTTP_STATUS and attempt.response_status:
        return str(attempt.response_status)
    return attempt.error_kind
