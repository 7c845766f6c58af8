"""What every throttle shares: the client's address, and a count of failures per time window.

Behind a reverse proxy every request's REMOTE_ADDR is the proxy's, so one throttled client would
lock out everybody. WEBHOOKS_TRUSTED_PROXY_HEADER names the header that the proxy in front of
Hookline sets; the right-most address in it is the one that proxy saw (a client can write
anything to the left of it, never to the right). Counts live in the cache (Redis in production,
so every web process shares them) and grow by an atomic increment, so parallel guesses cannot
undercount.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


@dataclass(frozen=True)
class FailureCount:
    count: int
    retry_after: int  # whole seconds until the window ends and the count starts again


def client_address(request: HttpRequest) -> str:
    """The client's IP address: the right-most entry of the trusted proxy header when one is
    configured and holds an address, else REMOTE_ADDR."""
    header = settings.WEBHOOKS_TRUSTED_PROXY_HEADER
    if header:
        meta_key = "HTTP_" + header.upper().replace("-", "_")
        forwarded = _address_or_none(request.META.get(meta_key, "").split(",")[-1])
        if forwarded is not None:
            return forwarded
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def client_group(request: HttpRequest) -> str:
    """The client as throttles count it: its IPv4 address, or its IPv6 /64, since one subscriber
    is usually given a whole /64 and could otherwise change address at every try."""
    address = client_address(request)
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def throttle_key(scope: str, *parts: str) -> str:
    """A cache key for `parts` (hashed: user names and addresses are not kept in clear)."""
    return f"{scope}:" + hashlib.sha256("|".join(parts).encode()).hexdigest()


def failure_count_add(*, key: str, window: int) -> FailureCount:
    """Count one more failure under `key`. The window opens with the first failure and lasts
    `window` seconds; then the count starts from zero again."""
    now = time.time()
    cache.add(f"{key}:ends", now + window, window)
    cache.add(key, 0, window)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, window)
        count = 1
    return FailureCount(count, _seconds_left(cache.get(f"{key}:ends"), now, window))


def failure_count_get(*, key: str, window: int) -> FailureCount:
    """The failures counted under `key` in its current window (0 when none is open)."""
    now = time.time()
    stored = cache.get_many([key, f"{key}:ends"])
    return FailureCount(stored.get(key) or 0, _seconds_left(stored.get(f"{key}:ends"), now, window))


def _seconds_left(ends: float | None, now: float, window: int) -> int:
    return max(1, math.ceil((ends or now + window) - now))


def _address_or_none(raw: str) -> str | None:
    """`raw` as a normalised IP address, with an optional port; None when it is none."""
    text = raw.strip()
    if text.startswith("[") and "]" in text:  # [2001:db8::1]:443
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # 203.0.113.7:443
        text = text.partition(":")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None
