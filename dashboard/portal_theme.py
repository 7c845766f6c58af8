"""A portal link's theme: the host's name, logo and accent colour, shown on the portal's pages.

The logo is only ever an `<img src>` in the tenant's browser: Hookline never fetches it. It must
be an https URL (a page framed on the host's HTTPS site would refuse mixed content anyway), and
the portal's Content Security Policy allows images from that one origin only
(dashboard.embedding). The accent colour is a `#rrggbb` value, which is all the stylesheet needs
and leaves nothing to inject into the page's style.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

MAX_HOST_NAME = 80
MAX_LOGO_URL = 2048
ACCENT_PATTERN = r"^#[0-9a-fA-F]{6}$"
# What may appear in a URL's host, as a CSP source lists it: no quotes, spaces, semicolons.
_HOST = re.compile(r"^[A-Za-z0-9.-]+$")


@dataclass(frozen=True)
class PortalTheme:
    """How a portal session looks; empty fields keep Hookline's own look."""

    host_name: str = ""
    logo_url: str = ""
    accent: str = ""

    @property
    def logo_origin(self) -> str:
        """The origin the CSP must allow images from ('' without a logo)."""
        if not self.logo_url:
            return ""
        parts = urlsplit(self.logo_url)
        return f"https://{parts.netloc}"


def validate_host_name(name: str) -> None:
    if len(name) > MAX_HOST_NAME:
        raise ValidationError(f"The host name is longer than {MAX_HOST_NAME} characters.")
    if not name.isprintable():
        raise ValidationError("The host name must be printable text on one line.")


def validate_logo_url(url: str) -> None:
    """An https URL with a plain host name (or address) and no credentials."""
    if len(url) > MAX_LOGO_URL:
        raise ValidationError(f"The logo URL is longer than {MAX_LOGO_URL} characters.")
    if not url.isprintable() or any(char.isspace() for char in url):
        raise ValidationError("The logo URL must not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as error:
        raise ValidationError(f"The logo URL is not a valid URL: {error}.") from None
    if parts.scheme != "https":
        raise ValidationError("The logo URL must start with https://.")
    if not parts.hostname or not _HOST.match(parts.hostname.strip("[]").replace(":", "")):
        raise ValidationError("The logo URL must name a host.")
    if parts.username is not None or parts.password is not None:
        raise ValidationError("The logo URL must not contain a user name or password.")


def validate_accent(colour: str) -> None:
    if not re.fullmatch(ACCENT_PATTERN, colour):
        raise ValidationError("The accent colour must be #rrggbb, such as #0a7f5a.")
