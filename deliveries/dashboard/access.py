"""Who sees what in the dashboard: staff see every tenant, members their own tenants only."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest

from deliveries.models import Delivery, ReplayJob
from subscriptions.models import Endpoint, Tenant

SESSION_TENANT = "dashboard_tenant"


@dataclass(frozen=True)
class Viewer:
    """The dashboard's view of the current user: which tenants, and which one is selected."""

    tenants: QuerySet[Tenant]
    tenant: Tenant | None  # None: staff looking at every tenant
    is_staff: bool

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


def viewer_for(request: HttpRequest) -> Viewer:
    """Resolve the viewer; `?tenant=slug` switches tenant and is remembered in the session."""
    user = request.user
    tenants = Tenant.objects.all() if user.is_staff else user.tenants.filter(is_active=True)
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
