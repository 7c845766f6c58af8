"""Portal links: short-lived signed URLs that open the dashboard for one tenant, no account needed.

The link carries the tenant, the capabilities and the expiry, signed with SECRET_KEY; nothing is
stored. Opening it starts a dashboard session limited to that tenant and those capabilities.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core import signing

SALT = "hookline.portal-link"
SESSION_KEY = "dashboard_portal"
CAPABILITIES = ("view", "replay", "manage_endpoints")
MAX_LIFETIME = 24 * 3600


class PortalLinkError(Exception):
    """The link is tampered with, malformed or expired."""


@dataclass(frozen=True)
class PortalGrant:
    tenant_id: int
    capabilities: tuple[str, ...]
    expires_at: float  # unix seconds

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires_at

    def to_session(self) -> dict[str, object]:
        return {"t": self.tenant_id, "c": list(self.capabilities), "e": self.expires_at}

    @classmethod
    def from_session(cls, data: dict) -> PortalGrant:
        return cls(tenant_id=int(data["t"]), capabilities=tuple(data["c"]), expires_at=data["e"])


def portal_token(*, tenant_id: int, capabilities: list[str], lifetime: int) -> tuple[str, float]:
    """A signed token for a portal link, and when it expires (unix seconds)."""
    expires_at = time.time() + min(lifetime, MAX_LIFETIME)
    grant = PortalGrant(tenant_id, tuple(sorted(set(capabilities) | {"view"})), expires_at)
    return signing.dumps(grant.to_session(), salt=SALT, compress=True), expires_at


def portal_grant(token: str) -> PortalGrant:
    """Check a portal token; raises PortalLinkError if it is tampered with or expired."""
    try:
        data = signing.loads(token, salt=SALT, max_age=MAX_LIFETIME)
        grant = PortalGrant.from_session(data)
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise PortalLinkError("This link is invalid.") from None
    if grant.expired:
        raise PortalLinkError("This link has expired: ask the application for a new one.")
    return grant
