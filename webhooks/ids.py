"""Public message ids: `msg_` + a time-ordered, random, dot-free token (the `webhook-id`)."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32: no dots, no look-alikes


def _base32(number: int, length: int) -> str:
    chars = []
    for _ in range(length):
        number, remainder = divmod(number, 32)
        chars.append(_ALPHABET[remainder])
    return "".join(reversed(chars))


def new_message_id() -> str:
    """`msg_` + 10 characters of milliseconds + 16 of randomness (80 bits), sortable by time."""
    return "msg_" + _base32(time.time_ns() // 1_000_000, 10) + _base32(secrets.randbits(80), 16)
