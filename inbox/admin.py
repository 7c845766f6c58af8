from __future__ import annotations

from django.contrib import admin

from deliveries.admin import ReadOnlyAdminMixin
from inbox.models import Inbox, InboxRequest


class InboxRequestInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = InboxRequest
    extra = 0
    can_delete = False
    fields = ("received_at", "method", "webhook_id", "signature_valid", "response_status", "body")


@admin.register(Inbox)
class InboxAdmin(admin.ModelAdmin):
    list_display = ("token", "tenant", "respond_status", "created_at")
    inlines = [InboxRequestInline]
