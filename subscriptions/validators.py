"""Validation of endpoint URLs, run when an endpoint is saved (the transport checks again)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from urllib.parse import urlsplit

import urllib3
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http.request import validate_host

from subscriptions.addresses import BlockedAddressError, resolve_allowed
from webhooks.payloads import contains_nul

MAX_URL_LENGTH = 2048


def validate_endpoint_url(url: str) -> None:
    """Raise ValidationError unless Hookline would deliver to `url`."""
    if len(url) > MAX_URL_LENGTH:
        raise ValidationError(f"URL is longer than {MAX_URL_LENGTH} characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise ValidationError(f"Not a valid URL: {error}.") from None
    if parts.scheme not in ("https", "http"):
        raise ValidationError("URL must start with https://.")
    if parts.scheme == "http" and settings.WEBHOOKS_REQUIRE_HTTPS:
        raise ValidationError("URL must use https:// (WEBHOOKS_REQUIRE_HTTPS is on).")
    if not parts.hostname:
        raise ValidationError("URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise ValidationError("URL must not contain a user name or password.")
    if url_points_at_hookline(url):
        raise ValidationError(
            f"URL points at Hookline itself ({parts.hostname} is one of its ALLOWED_HOSTS): "
            "only its test inbox, /inbox/<token>/, may receive webhooks there."
        )
    try:
        resolve_allowed(parts.hostname, port or (443 if parts.scheme == "https" else 80))
    except BlockedAddressError as error:
        raise ValidationError(f"URL is not allowed: {error}.") from None


# The test inbox (inbox.views.receive) is the one page of Hookline's own that webhooks
# may go to: it only records what arrives. Tokens are URL-safe base64 (deliveries.models).
_INBOX_PATH = re.compile(r"/inbox/[A-Za-z0-9_-]+/")


def url_points_at_hookline(url: str) -> bool:
    """Whether a request to `url` would reach Hookline's own web server, other than its inbox.

    Django answers only requests whose Host header matches ALLOWED_HOSTS, and the Host header
    Hookline sends is the URL's host, so a URL whose host matches them (port aside) is the one way
    a webhook reaches Hookline: an endpoint there could make Hookline call its own API, again and
    again. A "*" entry matches everything and says nothing about which host is Hookline's; it is
    left out. The URL is read by urllib3, the parser that picks where the request goes, so path
    tricks such as /inbox/x/../../api/ are judged by the path actually sent.
    """
    try:
        parts = urllib3.util.parse_url(url)
    except urllib3.exceptions.LocationParseError:
        return False  # not sendable at all; other checks refuse it
    if not parts.host:
        return False
    host = parts.host.lower().rstrip(".")
    own_hosts = [pattern for pattern in settings.ALLOWED_HOSTS if pattern != "*"]
    if not validate_host(host, own_hosts):
        return False
    return not _INBOX_PATH.fullmatch(parts.path or "/")


_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Hookline sets these itself: a custom value would change the signed message's meaning.
RESERVED_HEADERS = {"content-type", "user-agent"}
# Hop-by-hop and framing headers: a custom value could smuggle a second request, stall the
# receiver (Expect: 100-continue) or reach a proxy; urllib3 sets the ones a request needs.
FORBIDDEN_HEADERS = {"connection", "upgrade", "te", "trailer", "keep-alive", "expect", "host",
                     "content-length", "transfer-encoding"}  # fmt: skip
MAX_HEADERS = 20
MAX_HEADER_VALUE = 4096


def validate_endpoint_headers(headers: object) -> None:
    """Custom headers: a small object of names to strings, none of which Hookline sets itself."""
    if not isinstance(headers, dict):
        raise ValidationError("Headers must be an object of header names to string values.")
    if len(headers) > MAX_HEADERS:
        raise ValidationError(f"At most {MAX_HEADERS} custom headers are allowed.")
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.match(name) or len(name) > 100:
            raise ValidationError(f"{name!r} is not a valid header name.")
        _check_header_name_allowed(name)
        if not isinstance(value, str) or len(value) > MAX_HEADER_VALUE:
            raise ValidationError(
                f"Header {name!r} must have a string value up to {MAX_HEADER_VALUE} characters."
            )
        if any(char in value for char in "\r\n\0"):
            raise ValidationError(f"Header {name!r} must not contain line breaks.")
        if value != value.strip() or not value.isprintable():
            raise ValidationError(
                f"Header {name!r} must be printable, without leading or trailing whitespace."
            )
        if not value.isascii():
            raise ValidationError(f"Header {name!r} must be plain ASCII, as HTTP headers are.")


def _check_header_name_allowed(name: str) -> None:
    lowered = name.lower()
    if lowered in RESERVED_HEADERS or lowered.startswith("webhook-"):
        raise ValidationError(f"Header {name!r} is set by Hookline and cannot be overridden.")
    if lowered in FORBIDDEN_HEADERS or lowered.startswith("proxy-"):
        raise ValidationError(
            f"Header {name!r} is a hop-by-hop or framing header and cannot be set on an endpoint."
        )


MAX_METADATA_BYTES = 4096


def validate_endpoint_metadata(metadata: object) -> None:
    """The host's own data about an endpoint: a JSON object of at most MAX_METADATA_BYTES as
    compact UTF-8 JSON, storable as `jsonb` (no NUL, no unpaired surrogate, finite numbers)."""
    if not isinstance(metadata, dict):
        raise ValidationError("Metadata must be a JSON object.")
    try:
        text = json.dumps(metadata, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        size = len(text.encode())
    except (TypeError, ValueError, RecursionError):
        raise ValidationError(
            "Metadata must hold JSON text only: no unpaired surrogate, NaN or Infinity."
        ) from None
    if size > MAX_METADATA_BYTES:
        raise ValidationError(
            f"Metadata is {size} bytes as compact JSON; the limit is {MAX_METADATA_BYTES}."
        )
    if contains_nul(metadata):
        raise ValidationError("Metadata cannot contain the NUL character (\\u0000).")


_B64 = "[A-Za-z0-9+/]"
# The same rule as a regular expression, for the OpenAPI schema: whsec_ and the base64 of 24 to
# 64 bytes (8 to 21 groups of four characters, then an optional padded group).
SIGNING_SECRET_PATTERN = (
    rf"^whsec_(?:(?:{_B64}{{4}}){{8,20}}(?:{_B64}{{2}}==|{_B64}{{3}}=)?"
    rf"|(?:{_B64}{{4}}){{21}}(?:{_B64}{{2}}==)?)$"
)


def validate_signing_secret(secret: str) -> None:
    """A Standard Webhooks secret: `whsec_` and the base64 of 24 to 64 bytes."""
    if not secret.startswith("whsec_"):
        raise ValidationError("A signing secret starts with whsec_.")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("A signing secret is whsec_ followed by base64.") from None
    if not 24 <= len(key) <= 64:
        raise ValidationError("A signing secret holds 24 to 64 bytes of key.")
