from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from deliveries.admin import ReadOnlyAdminMixin
from operations.models import OperationalAlert


class AlertStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("open", "open"), ("cleared", "cleared")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
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
