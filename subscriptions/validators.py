"""Validation of endpoint URLs, run when an endpoint is saved (the transport checks again)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

from subscriptions.addresses import BlockedAddressError, resolve_allowed

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
    try:
        resolve_allowed(parts.hostname, port or (443 if parts.scheme == "https" else 80))
    except BlockedAddressError as error:
        raise ValidationError(f"URL is not allowed: {error}.") from None
