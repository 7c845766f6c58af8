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
# https, a plain host name (letters, digits, dots, dashes: nothing that could end a CSP source or
# carry a user name), an optional port, then visible ASCII only: no spaces, no control characters.
LOGO_URL_PATTERN = r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?([/?#][!-~]*)?$"
LOGO_URL_RULE = (
    "The logo URL must start with https:// and a plain host name (no user name or password), "
    "without spaces or control characters."
)
ACCENT_RULE = "The accent colour must be #rrggbb, such as #0a7f5a."
# One line of text: no control characters (C0, DEL, C1) or line separators (lone surrogates
# never get this far: the API's JSON parser refuses them).
HOST_NAME_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]+$"


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
    if not re.fullmatch(HOST_NAME_PATTERN, name):
        raise ValidationError("The host name must be one line of text, without control characters.")


def validate_logo_url(url: str) -> None:
    """An https URL with a plain host name, no credentials, spaces or control characters."""
    if len(url) > MAX_LOGO_URL:
        raise ValidationError(f"The logo URL is longer than {MAX_LOGO_URL} characters.")
    if not re.fullmatch(LOGO_URL_PATTERN, url):
        raise ValidationError(LOGO_URL_RULE)


def validate_accent(colour: str) -> None:
    if not re.fullmatch(ACCENT_PATTERN, colour):
        raise ValidationError(ACCENT_RULE)
