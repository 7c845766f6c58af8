"""Typed readers for environment variables that fail loudly on a malformed value."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import os
import re
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
# Letters, digits and dashes: WSGI servers drop or merge header names with underscores.
_HEADER_NAME = re.compile(r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*")


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_header_name(name: str) -> str:
    """An HTTP header name such as X-Forwarded-For, or "" when unset."""
    raw = os.environ.get(name, "").strip()
    if raw and not _HEADER_NAME.fullmatch(raw):
        raise ImproperlyConfigured(
            f"{name} must be an HTTP header name such as X-Forwarded-For, not {raw!r}"
        )
    return raw


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}")
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def env_list(name: str, default: str) -> list[str]:
    raw = os.environ.get(name, default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_seconds_list(name: str, default: str) -> tuple[float, ...]:
    items = env_list(name, default)
    try:
        values = tuple(float(item) for item in items)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} must be comma-separated seconds, such as 5,300,1800; got {items!r}"
        ) from None
    if not all(math.isfinite(value) for value in values):
        raise ImproperlyConfigured(f"{name} must hold finite numbers of seconds: {items!r}")
    if any(value < 0 for value in values):
        raise ImproperlyConfigured(f"{name} cannot hold negative delays: {items!r}")
    return values


def env_networks(
    name: str, default: str
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    items = env_list(name, default)
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in items)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} must be comma-separated CIDRs: {error}") from None


def env_url(name: str, *, require_https: bool) -> str:
    """An http(s) URL with a host, or "" when unset. The value is never echoed: it may hold a
    token."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return ""
    try:
        parts = urlsplit(raw)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 -- raises ValueError for a malformed port
    except ValueError:
        valid = False
    if not valid:
        raise ImproperlyConfigured(f"{name} must be an http(s) URL with a host")
    if parts.scheme == "http" and require_https:
        raise ImproperlyConfigured(f"{name} must be https:// while WEBHOOKS_REQUIRE_HTTPS is on")
    return raw


# An origin as CSP's frame-ancestors lists it: scheme, host (a leading "*." allowed), optional port.
_ORIGIN = re.compile(
    r"https?://(\*\.)?([A-Za-z0-9-]+\.)*[A-Za-z0-9-]+(:[0-9]{1,5})?"
    r"|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)


def env_origins(name: str) -> tuple[str, ...]:
    """Origins such as https://app.example.com, separated by spaces or commas; () when unset."""
    items = tuple(item for item in re.split(r"[\s,]+", os.environ.get(name, "")) if item)
    for item in items:
        if not _ORIGIN.fullmatch(item):
            raise ImproperlyConfigured(
                f"{name} must list origins such as https://app.example.com (scheme, host and "
                f"optional port, no path), separated by spaces or commas; got {item!r}"
            )
    return tuple(item.lower() for item in items)


def env_redis_url(name: str) -> str:
    """A redis:// or rediss:// URL with a host, or "" when unset. The value is never echoed: it
    may hold a password."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return ""
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 -- raises ValueError for a malformed port
        valid = parts.scheme in ("redis", "rediss") and bool(parts.hostname)
        int(parts.path.strip("/") or 0)  # the database number, if any
    except ValueError:
        valid = False
    if not valid:
        raise ImproperlyConfigured(
            f"{name} must be a redis:// or rediss:// URL, such as redis://host:6379/0"
        )
    return raw


def env_signing_secret(name: str) -> str:
    """A Standard Webhooks secret, `whsec_` + base64 of 24 to 64 bytes, or "" when unset.

    The same rule as endpoints' secrets (subscriptions.validators); the value is never echoed.
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return ""
    key = b""
    if raw.startswith("whsec_"):
        try:
            key = base64.b64decode(raw.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            key = b""
    if not 24 <= len(key) <= 64:
        raise ImproperlyConfigured(
            f"{name} must be whsec_ followed by the base64 of 24 to 64 random bytes"
        )
    return raw
