"""What goes on the wire for an event: the exact body bytes and the signed headers."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from subscriptions.headers import masked_value
from webhooks.formats import JSON, JSON_CONTENT_TYPE, Body, render
from webhooks.models import Event
from webhooks.signing import signature_header
from webhooks.transformations import body_of

USER_AGENT = "Hookline/0.1.0 (outbound webhooks)"
TRACEPARENT = "traceparent"
_TRACE_CONTEXT = {TRACEPARENT, "tracestate"}


def iso_time(moment: datetime) -> str:
    """A time as messages give it: ISO 8601 in UTC, to the millisecond, e.g. `…T12:00:00.000Z`."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_timestamp(event: Event) -> str:
    return iso_time(event.created_at)


def message(
    event: Event, event_type_name: str, payload_format: str = JSON, transformation: str = ""
) -> Body:
    """The body and Content-Type of the event in an endpoint's payload format (webhooks.formats),
    reshaped first by the endpoint's `transformation` if it has one (webhooks.transformations).

    Identical for every attempt of the event to endpoints of that format and transformation;
    raises FormatError for a format Hookline does not know, TransformError for a transformation
    that fails. JSON carries the payload's text as the host sent it; the other formats, and
    transformations, are built from the parsed payload.
    """
    if transformation:
        timestamp = iso_timestamp(event)
        unshaped = {"type": event_type_name, "timestamp": timestamp, "data": event.payload}
        return body_of(transformation, unshaped, payload_format)
    data = event.payload_as_sent if payload_format == JSON else event.payload
    return render(
        payload_format, event_type=event_type_name, timestamp=iso_timestamp(event), data=data
    )


def signed_headers(
    *,
    msg_id: str,
    timestamp: int,
    body: bytes,
    keys: Iterable[bytes],
    extra: dict[str, str],
    content_type: str = JSON_CONTENT_TYPE,
    traceparent: str = "",
) -> dict[str, str]:
    """Request headers: the endpoint's own first, so the protocol headers always win.

    The signature covers `body`, which must be the exact bytes sent with `content_type`. With a
    `traceparent` (W3C Trace Context), it is sent too, and the endpoint's own trace-context
    headers, if any, are not: they would describe another trace.
    """
    headers = dict(extra)
    if traceparent:
        headers = {name: value for name, value in headers.items()
                   if name.lower() not in _TRACE_CONTEXT}  # fmt: skip
        headers[TRACEPARENT] = traceparent
    headers.update(
        {
            "Content-Type": content_type,
            "User-Agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(keys, msg_id, timestamp, body),
        }
    )
    return headers


# The headers Hookline sets itself; every other one is an endpoint's custom header.
_OWN_HEADERS = {"content-type", "user-agent", "webhook-id", "webhook-timestamp",
                "webhook-signature"}  # fmt: skip


def redacted(headers: dict[str, str]) -> dict[str, str]:
    """Headers as stored with an attempt: every custom header's value masked, Hookline's kept.

    Custom values are often the receiver's credentials under any name (`X-Shop-Auth`), so none
    is kept whole; the last 4 characters are enough to tell which value was sent.
    """
    return {
        name: value if name.lower() in _OWN_HEADERS else masked_value(value)
        for name, value in headers.items()
    }
