from __future__ import annotations

from django.contrib import admin

from deliveries.models import Attempt, Delivery, Inbox, InboxRequest


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


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
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
    list_filter = ("status",)
    list_select_related = ("event", "endpoint")
    show_full_result_count = False
    inlines = [AttemptInline]


@admin.register(Attempt)
class AttemptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
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


class InboxRequestInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = InboxRequest
    extra = 0
    can_delete = False
    fields = ("received_at", "method", "webhook_id", "signature_valid", "response_status", "body")


@admin.register(Inbox)
class InboxAdmin(admin.ModelAdmin):
    list_display = ("token", "tenant", "respond_status", "created_at")
    inlines = [InboxRequestInline]
