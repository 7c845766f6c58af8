from __future__ import annotations

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest
from django.utils.html import format_html

from config.admin_lists import QuickCheckboxMixin
from deliveries.admin import CappedCountPaginator
from deliveries.models import Delivery
from webhooks.models import Event
from webhooks.payloads import pretty_json


class DeliveryInline(admin.TabularInline):
    model = Delivery
    extra = 0
    can_delete = False
    fields = ("endpoint", "status", "attempt_count", "last_response_status", "next_attempt_at")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(Event)
class EventAdmin(QuickCheckboxMixin, admin.ModelAdmin):
    paginator = CappedCountPaginator
    list_display = ("public_id", "tenant", "event_type", "created_at")
    list_select_related = ("tenant", "event_type")
    search_fields = ("public_id", "idempotency_key")
    show_full_result_count = False
    readonly_fields = (
        "public_id",
        "tenant",
        "event_type",
        "payload_as_sent",
        "idempotency_key",
        "channels",
        "created_at",
    )
    fields = readonly_fields  # the parsed `payload` would otherwise show as an editable field
    inlines = [DeliveryInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="payload")
    def payload_as_sent(self, event: Event) -> str:
        """The payload as the host sent it, which is what receivers get."""
        return format_html("<pre>{}</pre>", pretty_json(event.payload_as_sent))
