from __future__ import annotations

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property

from deliveries.dashboard.portal import portal_links_revoke
from deliveries.models import (
    Attempt,
    DeadLetter,
    Delivery,
    Inbox,
    InboxRequest,
    OperationalAlert,
    PortalLink,
    ReplayJob,
)
from deliveries.services import deliveries_replay
from subscriptions.admin import TenantAdmin


class CappedCountPaginator(Paginator):
    """Counts at most CAP rows: an exact COUNT(*) over a million deliveries costs more than the
    page itself. Past the cap, the admin shows CAP results and pages up to there."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list.order_by()[: self.CAP].count()


class ReadOnlyAdminMixin:
    def has_add_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False


class AttemptInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Attempt
    extra = 0
    can_delete = False
    fields = (
        "number",
        "trigger",
        "started_at",
        "duration_ms",
        "response_status",
        "error_kind",
        "error_message",
    )


@admin.action(description="Replay selected deliveries (one attempt each)")
def replay_deliveries(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
) -> None:
    selected = queryset.count()
    queued = deliveries_replay(deliveries=Delivery.objects.filter(pk__in=queryset.values("pk")))
    skipped = selected - queued
    message = f"Queued {queued} deliveries for replay."
    if skipped:
        message += f" {skipped} still pending were left in the queue as they are."
    modeladmin.message_user(request, message, messages.SUCCESS)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    paginator = CappedCountPaginator
    list_display = (
        "id",
        "event",
        "endpoint",
        "status",
        "attempt_count",
        "last_response_status",
        "next_attempt_at",
        "created_at",
    )
    list_filter = (
        "status",
        ("created_at", admin.DateFieldListFilter),
        ("endpoint__tenant", admin.RelatedFieldListFilter),
        ("event__event_type", admin.RelatedFieldListFilter),
        ("endpoint", admin.RelatedFieldListFilter),
    )
    search_fields = ("=event__public_id", "=event__idempotency_key")
    list_select_related = ("event", "endpoint")
    show_full_result_count = False
    actions = [replay_deliveries]
    inlines = [AttemptInline]


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    paginator = CappedCountPaginator
    list_display = (
        "id",
        "endpoint",
        "event_type",
        "attempt_count",
        "last_response_status",
        "last_error",
        "finished_at",
    )
    list_select_related = ("endpoint", "event__event_type")
    list_filter = (
        ("finished_at", admin.DateFieldListFilter),
        ("endpoint__tenant", admin.RelatedFieldListFilter),
        ("event__event_type", admin.RelatedFieldListFilter),
    )
    search_fields = ("=event__public_id", "endpoint__url")
    show_full_result_count = False
    actions = [replay_deliveries]
    inlines = [AttemptInline]
    ordering = ["-id"]  # served by the (status, -id) index; finished_at would sort 50k rows

    @admin.display(description="event type", ordering="event__event_type__name")
    def event_type(self, dead_letter: DeadLetter) -> str:
        return dead_letter.event.event_type.name


@admin.register(Attempt)
class AttemptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    paginator = CappedCountPaginator
    list_display = (
        "id",
        "delivery",
        "number",
        "trigger",
        "response_status",
        "error_kind",
        "duration_ms",
        "started_at",
    )
    list_filter = ("trigger", "error_kind")
    show_full_result_count = False


@admin.register(ReplayJob)
class ReplayJobAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Bulk replays ("every failed delivery since T"), started from the API or the dashboard."""

    list_display = (
        "id",
        "endpoint",
        "status",
        "since",
        "replayed",
        "total",
        "requested_by",
        "created_at",
        "finished_at",
        "failure_reason",
    )
    list_filter = ("status",)
    list_select_related = ("endpoint",)
    show_full_result_count = False


class InboxRequestInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = InboxRequest
    extra = 0
    can_delete = False
    fields = ("received_at", "method", "webhook_id", "signature_valid", "response_status", "body")


@admin.register(Inbox)
class InboxAdmin(admin.ModelAdmin):
    list_display = ("token", "tenant", "respond_status", "created_at")
    inlines = [InboxRequestInline]


class AlertStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin) -> list[tuple[str, str]]:  # noqa: ANN001
        return [("open", "open"), ("cleared", "cleared")]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:  # noqa: ANN001
        if self.value() == "open":
            return queryset.filter(cleared_at=None)
        if self.value() == "cleared":
            return queryset.exclude(cleared_at=None)
        return queryset


@admin.register(OperationalAlert)
class OperationalAlertAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Alerts raised and cleared by Hookline itself. Deleting an open one re-arms it: the next
    check tells people again if the condition still holds."""

    list_display = ("kind", "about", "raised_at", "cleared_at", "details")
    list_filter = (AlertStateFilter, "kind")
    date_hierarchy = "raised_at"

    @admin.display(description="about", ordering="subject")
    def about(self, alert: OperationalAlert) -> str:
        return f"endpoint {alert.subject}" if alert.subject else "all deliveries"


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
    )
    list_filter = (
        ("tenant", admin.RelatedFieldListFilter),
        ("opened_at", admin.EmptyFieldListFilter),
        ("revoked_at", admin.EmptyFieldListFilter),
    )
    list_select_related = ("tenant", "issued_by__tenant")
    exclude = ("token_hash",)
    actions = ["revoke"]

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        # The form is read-only for everyone; revoking is a change, so it needs that permission.
        return request.user.has_perm("deliveries.change_portallink")

    @admin.action(description="Revoke selected portal links", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[PortalLink]) -> None:
        revoked = portal_links_revoke(links=queryset)
        self.message_user(request, f"Revoked {revoked} portal links.", messages.SUCCESS)


@admin.action(description="Revoke all portal links of selected tenants", permissions=["change"])
def revoke_portal_links(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
) -> None:
    revoked = portal_links_revoke(links=PortalLink.objects.filter(tenant__in=queryset))
    modeladmin.message_user(
        request, f"Revoked {revoked} portal links; their sessions have ended.", messages.SUCCESS
    )


# Portal links belong to this app, which sits above subscriptions: the tenant admin gets its
# action from here rather than importing upwards.
TenantAdmin.actions = [*TenantAdmin.actions, revoke_portal_links]
