"""Standard Webhooks signatures: HMAC-SHA256 over "{id}.{timestamp}.{body}".

The HMAC key is the base64-decoded part of a `whsec_…` secret. During a secret rotation, a message
carries one signature per secret, space-separated, and a receiver accepts it if any one matches.

Receivers call `verify(secret, headers, body)`, or decorate a Django view with
`hookline_receiver.django.verify_webhook`. Hookline signs with `signature_header` from here too,
so sender and receiver share one implementation. This module needs only the standard library of
Python 3.9 or newer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Union

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300
SIGNATURE_VERSION = "v1"
# The type of Hookline's ownership check, whose data.challenge the receiver echoes.
VERIFICATION_TYPE = "hookline.verification"

# Union, not `str | bytes`: the alias is evaluated at runtime, and Python 3.9 has no `|` on types.
Secret = Union[str, bytes]
"""A `whsec_…` secret, the same without its prefix, or the raw key bytes."""

_TIMESTAMP = re.compile(r"[0-9]{1,15}")  # ASCII digits only: int() would also take "١٢٣" or "+1"


class VerificationError(ValueError):
    """The message is not authentic or too old; reject it. The subclasses say why."""


class InvalidHeadersError(VerificationError):
    """A `webhook-id`, `webhook-timestamp` or `webhook-signature` header is missing or malformed."""


class TimestampTooOldError(VerificationError):
    """`webhook-timestamp` is older than the tolerance allows: possibly a replayed message."""


class TimestampTooNewError(VerificationError):
    """`webhook-timestamp` is further in the future than the tolerance: a clock is wrong."""


class SignatureMismatchError(VerificationError):
    """No `v1` signature in `webhook-signature` matches the body under any of the secrets."""


class InvalidSecretError(ValueError):
    """The receiver's own secret is unusable: a configuration error, not a bad message."""


@dataclass(frozen=True)
class VerifiedMessage:
    """A message whose signature matched: its id (the dedup key), timestamp and exact body."""

    id: str
    timestamp: int
    body: bytes

    @property
    def signed_at(self) -> datetime:
        """When this attempt was signed (each retry is signed anew; `id` stays the same)."""
        return datetime.fromtimestamp(self.timestamp, tz=timezone.utc)

    def json(self) -> Any:
        """The parsed body: for Hookline, `{"type": …, "timestamp": …, "data": {…}}`."""
        return json.loads(self.body)

    def challenge(self) -> str | None:
        """The challenge to echo when this is Hookline's ownership check (`hookline.verification`):
        answer it with a 2xx whose body is the challenge, or `{"challenge": "…"}`. None for every
        other message."""
        if VERIFICATION_TYPE.encode() not in self.body:
            return None  # spares parsing every other message
        try:
            message = json.loads(self.body)
        except (ValueError, RecursionError):
            return None
        if not isinstance(message, dict) or message.get("type") != VERIFICATION_TYPE:
            return None
        data = message.get("data")
        challenge = data.get("challenge") if isinstance(data, dict) else None
        return challenge if isinstance(challenge, str) else None


def secret_key(secret: Secret) -> bytes:
    """The HMAC key of a `whsec_…` secret (the prefix is optional; bytes are the key itself)."""
    if isinstance(secret, bytes):
        key = secret
    elif isinstance(secret, str):
        key = _decode_secret(secret.strip().removeprefix(SECRET_PREFIX))
    else:
        raise InvalidSecretError(f"a webhook secret is a str or bytes, not {type(secret).__name__}")
    if not key:
        raise InvalidSecretError("the webhook secret is empty")
    return key


def _decode_secret(encoded: str) -> bytes:
    padded = encoded + "=" * (-len(encoded) % 4)  # some senders drop base64 padding
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecretError(
            "the webhook secret is not 'whsec_' followed by base64; copy it again from the sender"
        ) from None


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature."""
    digest = _digest(key, msg_id, timestamp, body)
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signature_header(keys: Iterable[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per key, space-separated."""
    return " ".join(sign(key, msg_id, timestamp, body) for key in keys)


def verify(
    secret: Secret | Iterable[Secret],
    headers: Mapping[str, Any],
    body: bytes | str,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> VerifiedMessage:
    """Check a received message and return it; raise a VerificationError subclass to reject it.

    `secret` is one secret or several (the receiver's own rotation: any may match). `headers` is
    any mapping: a dict in any letter case, Django's `request.headers`, or WSGI/`request.META`
    keys such as `HTTP_WEBHOOK_ID`. `body` is the exact request body. Every `v1` entry of
    `webhook-signature` is tried (the sender's rotation); entries of other versions are ignored.

    Raises InvalidHeadersError, TimestampTooOldError, TimestampTooNewError or
    SignatureMismatchError (all VerificationError), or InvalidSecretError for an unusable secret.
    """
    keys = _keys(secret)
    msg_id, timestamp, signatures = _parse_headers(headers)
    _check_timestamp(timestamp, tolerance, time.time() if now is None else now)
    raw_body = body.encode() if isinstance(body, str) else bytes(body)
    expected = [_digest(key, msg_id, timestamp, raw_body) for key in keys]
    if not signatures:
        raise SignatureMismatchError("no signature matches: webhook-signature has no v1 entry")
    if not any(hmac.compare_digest(e, s) for e in expected for s in signatures):
        raise SignatureMismatchError(
            f"no signature matches: {len(signatures)} v1 signature(s) checked against "
            f"{len(keys)} secret(s); a wrong secret, or the body changed after signing"
        )
    return VerifiedMessage(id=msg_id, timestamp=timestamp, body=raw_body)


def _keys(secret: Secret | Iterable[Secret]) -> list[bytes]:
    secrets = [secret] if isinstance(secret, (str, bytes)) else list(secret or ())
    if not secrets:
        raise InvalidSecretError("no webhook secret given")
    return [secret_key(one) for one in secrets]


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def _parse_headers(headers: Mapping[str, Any]) -> tuple[str, int, list[bytes]]:
    found = _webhook_headers(headers)
    missing = [name for name in ("id", "timestamp", "signature") if not found.get(name, "").strip()]
    if missing:
        names = ", ".join(f"webhook-{name}" for name in missing)
        raise InvalidHeadersError(f"missing header(s): {names}")
    msg_id, stamp = found["id"], found["timestamp"].strip()
    if "." in msg_id:
        raise InvalidHeadersError("webhook-id must not contain '.'")
    if not _TIMESTAMP.fullmatch(stamp):
        raise InvalidHeadersError(f"webhook-timestamp {_excerpt(stamp)} is not unix seconds")
    return msg_id, int(stamp), _v1_signatures(found["signature"])


def _webhook_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    """`webhook-*` values by suffix, however spelt: `Webhook-Id`, `HTTP_WEBHOOK_ID`…"""
    found: dict[str, str] = {}
    for name, value in headers.items():
        normalised = str(name).lower().replace("_", "-").removeprefix("http-")
        if not normalised.startswith("webhook-") or not isinstance(value, str):
            continue
        suffix = normalised.removeprefix("webhook-")
        if found.setdefault(suffix, value) != value:
            raise InvalidHeadersError(f"conflicting values for the header webhook-{suffix}")
    return found


def _v1_signatures(header: str) -> list[bytes]:
    """The decoded `v1` entries of `webhook-signature`; other versions and junk are skipped."""
    signatures = []
    for entry in header.split():
        version, _, encoded = entry.partition(",")
        if version != SIGNATURE_VERSION:
            continue
        try:
            signatures.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return signatures


def _check_timestamp(timestamp: int, tolerance: float, now: float) -> None:
    if timestamp < now - tolerance:
        raise TimestampTooOldError(
            f"webhook-timestamp {timestamp} is {now - timestamp:.0f} s old, more than the "
            f"{tolerance:g} s tolerance away from now (a replayed message, or a slow clock)"
        )
    if timestamp > now + tolerance:
        raise TimestampTooNewError(
            f"webhook-timestamp {timestamp} is {timestamp - now:.0f} s in the future, more than "
            f"the {tolerance:g} s tolerance away from now (check this machine's clock)"
        )


def _excerpt(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")
