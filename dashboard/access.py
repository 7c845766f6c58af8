"""Who sees what in the dashboard: staff see every tenant, members their own tenants only."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from dashboard.portal import (
    CAPABILITIES,
    SESSION_KEY,
    PortalGrant,
    PortalLinkRefused,
    portal_link_check,
)
from dashboard.portal_theme import PortalTheme
from dashboard.portal_views import portal_refused
from deliveries.models import Delivery, ReplayJob
from subscriptions.models import Endpoint, Tenant

SESSION_TENANT = "dashboard_tenant"


@dataclass(frozen=True)
class Viewer:
    """The dashboard's view of the current user: which tenants, and which one is selected."""

    tenants: QuerySet[Tenant]
    tenant: Tenant | None  # None: staff looking at every tenant
    is_staff: bool
    capabilities: tuple[str, ...] = CAPABILITIES
    portal_expires_at: datetime | None = None  # set for a portal-link session
    portal_link_id: int | None = None
    theme: PortalTheme = PortalTheme()

    @property
    def can_replay(self) -> bool:
        return "replay" in self.capabilities

    @property
    def can_manage(self) -> bool:
        return "manage_endpoints" in self.capabilities

    @property
    def can_view_secret(self) -> bool:
        return "view_secret" in self.capabilities

    def require(self, capability: str) -> None:
        if capability not in self.capabilities:
            raise PermissionDenied(f"This session may not {capability.replace('_', ' ')}.")

    def scope(self) -> QuerySet[Tenant]:
        if self.tenant is not None:
            return Tenant.objects.filter(id=self.tenant.id)
        return self.tenants

    def endpoints(self) -> QuerySet[Endpoint]:
        return Endpoint.objects.filter(tenant__in=self.scope())

    def deliveries(self) -> QuerySet[Delivery]:
        return Delivery.objects.filter(endpoint__tenant__in=self.scope())

    def replay_jobs(self) -> QuerySet[ReplayJob]:
        return ReplayJob.objects.filter(tenant__in=self.scope())


def portal_grant_of(request: HttpRequest) -> PortalGrant | None:
    """The grant of this request's portal session, checked against its link's row once per
    request; raises PortalLinkRefused (and ends the session) once the link is revoked."""
    if not hasattr(request, "_portal_grant"):
        request._portal_grant = _portal_grant_checked(request)  # type: ignore[attr-defined]
    return request._portal_grant  # type: ignore[attr-defined]


def _portal_grant_checked(request: HttpRequest) -> PortalGrant | None:
    data = request.session.get(SESSION_KEY)
    if not data:
        return None
    # A session without a link id was opened by a signed link of an earlier version: it ends.
    link_id = data.get("link") if isinstance(data, dict) else None
    try:
        grant = portal_link_check(link_id=link_id) if isinstance(link_id, int) else None
    except PortalLinkRefused:
        del request.session[SESSION_KEY]
        raise
    if grant is None:
        del request.session[SESSION_KEY]
    return grant


def dashboard_login_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Let in signed-in users and valid portal-link sessions; send others to sign in, and a
    session whose link was revoked to a page that says so."""

    @functools.wraps(view)
    def guarded(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        try:
            grant = portal_grant_of(request)
        except PortalLinkRefused as refused:
            return portal_refused(request, refused)
        if request.user.is_authenticated or grant is not None:
            return view(request, *args, **kwargs)
        return redirect_to_login(request.get_full_path())

    return guarded


def viewer_for(request: HttpRequest) -> Viewer:
    """Resolve the viewer; `?tenant=slug` switches tenant and is remembered in the session."""
    grant = portal_grant_of(request)
    if grant is not None:
        return _portal_viewer(grant)
    user = request.user
    if user.is_staff:
        tenants = Tenant.objects.all()
    else:
        member = cast(int, user.pk)  # signed in: every dashboard view requires it
        tenants = Tenant.objects.filter(members__id=member, is_active=True)
    tenants = tenants.order_by("slug")
    wanted = request.GET.get("tenant")
    if wanted is not None:
        request.session[SESSION_TENANT] = wanted
    chosen = request.session.get(SESSION_TENANT, "")
    tenant = tenants.filter(slug=chosen).first() if chosen else None
    if tenant is None and not user.is_staff:
        tenant = tenants.first()
        if tenant is None:
            raise PermissionDenied("You are not a member of any tenant.")
    return Viewer(tenants=tenants, tenant=tenant, is_staff=user.is_staff)


def _portal_viewer(grant: PortalGrant) -> Viewer:
    tenants = Tenant.objects.filter(id=grant.tenant_id, is_active=True)
    tenant = tenants.first()
    if tenant is None:
        raise PermissionDenied("This tenant is no longer active.")
    return Viewer(
        tenants=tenants,
        tenant=tenant,
        is_staff=False,
        capabilities=grant.capabilities,
        portal_expires_at=grant.expires_at,
        portal_link_id=grant.link_id,
        theme=grant.theme,
    )
