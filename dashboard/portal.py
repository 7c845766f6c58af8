"""Portal links: single-use, revocable URLs opening the dashboard for one tenant, no account needed.

Each link is a `PortalLink` row. The URL carries a random token of 256 bits; only its SHA-256 is
stored. Opening the link uses it up, and the dashboard session it starts is bound to the row: the
session re-reads the row on every request, so revoking the link ends the session at its next
request. Why rows and not signed tokens: docs/decisions/0013-portal-links-are-rows.md.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from dashboard.models import PortalLink
from dashboard.portal_theme import PortalTheme
from subscriptions.models import ApiKey, OrganisationKey, Tenant

SESSION_KEY = "dashboard_portal"
CAPABILITIES = ("view", "replay", "manage_endpoints", "view_secret")
MAX_LIFETIME = 24 * 3600
TOKEN_PREFIX = "hlp_"
TENANT_DEACTIVATED = "This tenant's portal is closed: the tenant was deactivated."


class PortalLinkRefused(Exception):
    """The link (or the session it opened) may not be used; `status` is the page's HTTP status."""

    def __init__(self, reason: str, *, status: int = 403) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class PortalGrant:
    """What a portal session may do, read from its link's row on each request."""

    link_id: int
    tenant_id: int
    capabilities: tuple[str, ...]
    expires_at: datetime
    theme: PortalTheme = PortalTheme()

    @classmethod
    def of(cls, link: PortalLink) -> PortalGrant:
        return cls(link.id, link.tenant_id, tuple(link.capabilities), link.expires_at, link.theme)


def portal_token_hash(token: str) -> str:
    # Tokens carry 256 random bits, so a plain SHA-256 cannot be brute-forced (as for API keys).
    return hashlib.sha256(token.encode()).hexdigest()


def portal_link_issue(
    *,
    tenant: Tenant,
    capabilities: Iterable[str],
    lifetime: int,
    issued_by: ApiKey | OrganisationKey | None = None,
    theme: PortalTheme | None = None,
) -> tuple[PortalLink, str]:
    """Issue a link for `tenant`, in the host's `theme` when given, recording the tenant's API
    key or the organisation key that asked (`issued_by`; None from code). Returns the row and
    the token, which is never stored.

    `view` is always granted; the lifetime is capped at MAX_LIFETIME seconds. Raises
    ValidationError for a theme that dashboard.portal_theme refuses.
    """
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    theme = theme or PortalTheme()
    link = PortalLink(
        tenant=tenant,
        token_hash=portal_token_hash(token),
        capabilities=sorted(set(capabilities) | {"view"}),
        expires_at=timezone.now() + timedelta(seconds=min(lifetime, MAX_LIFETIME)),
        issued_by=issued_by if isinstance(issued_by, ApiKey) else None,
        issued_by_org_key=issued_by if isinstance(issued_by, OrganisationKey) else None,
        theme_host_name=theme.host_name,
        theme_logo_url=theme.logo_url,
        theme_accent=theme.accent,
    )
    link.full_clean(exclude=["tenant", "issued_by", "issued_by_org_key", "token_hash"])
    link.save()
    return link, token


def portal_link_open(*, token: str, client_address: str | None) -> PortalLink:
    """Use the link up and return it; raises PortalLinkRefused if it is unknown, expired, already
    used or revoked, or its tenant is deactivated. Of any number of concurrent opens of one
    link, exactly one succeeds."""
    token_hash = portal_token_hash(token)
    now = timezone.now()
    if PortalLink.objects.filter(token_hash=token_hash, tenant__is_active=False).exists():
        raise PortalLinkRefused(TENANT_DEACTIVATED)
    # One conditional UPDATE on the row's own columns: a second open waits for the first one's
    # row lock, then re-checks `opened_at IS NULL` against the committed row and updates nothing.
    opened = PortalLink.objects.filter(
        token_hash=token_hash,
        opened_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__gt=now,
    ).update(opened_at=now, opened_from=client_address)
    link = PortalLink.objects.filter(token_hash=token_hash).first()
    if link is None:
        raise PortalLinkRefused("This link is invalid.")
    if not opened:
        raise _refusal(link)
    return link


def portal_link_check(*, link_id: int) -> PortalGrant | None:
    """The grant of a live portal session's link: None once it has expired or is gone; raises
    PortalLinkRefused once it is revoked or its tenant deactivated. One read by primary key
    (with the tenant's row), made on each dashboard request."""
    link = PortalLink.objects.select_related("tenant").filter(id=link_id).first()
    if link is None or link.expires_at <= timezone.now():
        return None
    if link.revoked_at is not None:
        raise PortalLinkRefused("This session has ended: its link was revoked.")
    if not link.tenant.is_active:
        raise PortalLinkRefused(TENANT_DEACTIVATED)
    return PortalGrant.of(link)


def portal_links_revoke(*, links: QuerySet[PortalLink]) -> int:
    """Revoke the links not revoked yet; sessions opened from them end at their next request.
    Returns how many were revoked."""
    return links.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())


def _refusal(link: PortalLink) -> PortalLinkRefused:
    # 410 Gone for a link that was good and was taken back or used up; an expired link says so
    # whether or not it was used (what its holder needs to hear is "ask for a new one").
    if link.revoked_at is not None:
        return PortalLinkRefused("This link was revoked.", status=410)
    if link.expires_at <= timezone.now():
        return PortalLinkRefused("This link has expired.")
    return PortalLinkRefused("This link was already used: each link opens once.", status=410)
