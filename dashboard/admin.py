from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from config.admin_lists import FewChoicesRelatedFilter
from dashboard.models import PortalLink, SecretReveal
from dashboard.portal import portal_links_revoke
from deliveries.admin import ReadOnlyAdminMixin
from subscriptions.admin import TenantAdmin


@admin.register(PortalLink)
class PortalLinkAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Issued portal links, read-only: when each was issued, opened and from where. Revoking one
    ends the dashboard session it opened."""

    list_display = (
        "id",
        "tenant",
        "state",
        "capabilities",
        "created_at",
        "expires_at",
        "opened_at",
        "opened_from",
        "revoked_at",
        "issued_by",
        "issued_by_org_key",
        "theme_host_name",
    )
    list_filter = (
        ("tenant", FewChoicesRelatedFilter),
        ("opened_at", admin.EmptyFieldListFilter),
        ("revoked_at", admin.EmptyFieldListFilter),
    )
    list_select_related = ("tenant", "issued_by__tenant", "issued_by_org_key")
    exclude = ("token_hash",)
    actions = ["revoke"]

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        # The form is read-only for everyone; revoking is a change, so it needs that permission.
        return request.user.has_perm("dashboard.change_portallink")

    @admin.action(description="Revoke selected portal links", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[PortalLink]) -> None:
        revoked = portal_links_revoke(links=queryset)
        self.message_user(request, f"Revoked {revoked} portal links.", messages.SUCCESS)


@admin.register(SecretReveal)
class SecretRevealAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every showing of a signing secret in the dashboard, newest first: who, when, from where.
    The secret itself is never stored here."""

    list_display = ("created_at", "tenant", "endpoint_url", "kind", "user", "portal_link",
                    "client_address")  # fmt: skip
    list_filter = (("tenant", FewChoicesRelatedFilter), "kind")
    list_select_related = ("tenant", "user", "portal_link")
    search_fields = ["=endpoint__id", "endpoint_url"]
    show_full_result_count = False


@admin.action(description="Revoke all portal links of selected tenants", permissions=["change"])
def revoke_portal_links(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
) -> None:
    revoked = portal_links_revoke(links=PortalLink.objects.filter(tenant__in=queryset))
    modeladmin.message_user(
        request, f"Revoked {revoked} portal links; their sessions have ended.", messages.SUCCESS
    )


# Portal links belong to the dashboard, which sits above subscriptions: the tenant admin gets its
# action from here rather than importing upwards.
TenantAdmin.actions = [*TenantAdmin.actions, revoke_portal_links]
