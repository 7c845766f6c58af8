"""What goes on the wire for an event: the exact body bytes and the signed headers."""

from __future__ import annotations

import json
from collections.abc import Iterable

from webhooks.models import Event
from webhooks.signing import signature_header

USER_AGENT = "Hookline/0.1.0 (outbound webhooks)"


def iso_timestamp(event: Event) -> str:
    return event.created_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def message_body(event: Event, event_type_name: str) -> bytes:
    """The JSON body `{"type", "timestamp", "data"}`, identical for every attempt of the event."""
    message = {"type": event_type_name, "timestamp": iso_timestamp(event), "data": event.payload}
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


def signed_headers(
    *, msg_id: str, timestamp: int, body: bytes, keys: Iterable[bytes], extra: dict[str, str]
) -> dict[str, str]:
    """Request headers: the endpoint's own first, so the protocol headers always win."""
    headers = dict(extra)
    headers.update(
        {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(keys, msg_id, timestamp, body),
        }
    )
    return headers


_SECRET_HEADER_WORDS = ("authorization", "token", "secret", "key", "cookie", "password")


def redacted(headers: dict[str, str]) -> dict[str, str]:
    """Headers as stored with an attempt: custom credentials masked, the signature kept."""
    return {
        name: "[redacted]"
        if any(word in name.lower() for word in _SECRET_HEADER_WORDS)
        and not name.lower().startswith("webhook-")
        else value
        for name, value in headers.items()
    }
