from __future__ import annotations

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.safestring import SafeString

from config.admin_lists import FewChoicesRelatedFilter, QuickCheckboxMixin
from deliveries.models import Attempt, DeadLetter, Delivery, ReplayJob
from deliveries.ordering import delivery_blocked_by
from deliveries.services import deliveries_replay


class CappedCountPaginator(Paginator):
    """Counts at most CAP rows: an exact COUNT(*) over a million deliveries costs more than the
    page itself. Past the cap, the admin shows CAP results and pages up to there."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        rows: QuerySet = self.object_list  # type: ignore[assignment]  # a queryset here
        return rows.order_by()[: self.CAP].count()


class ReadOnlyAdminMixin:
    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
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


class WaitingOnKeyFilter(admin.SimpleListFilter):
    """Deliveries waiting behind an earlier delivery of their ordering key. Only pending ones
    ever wait: filtering on the status too lets the (status, -id) index serve the list, where a
    flag alone would walk every finished row."""

    title = "ordering key"
    parameter_name = "waiting_on_key"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "Waiting behind an earlier delivery")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(status=Delivery.Status.PENDING, waiting_on_key=True)
        return queryset


@admin.register(Delivery)
class DeliveryAdmin(QuickCheckboxMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    paginator = CappedCountPaginator
    list_display = (
        "id",
        "event",
        "endpoint",
        "status_shown",
        "attempt_count",
        "last_response_status",
        "next_attempt_at",
        "created_at",
    )
    list_filter = (
        "status",
        ("created_at", admin.DateFieldListFilter),
        ("endpoint__tenant", FewChoicesRelatedFilter),
        ("event__event_type", FewChoicesRelatedFilter),
        ("endpoint", FewChoicesRelatedFilter),
        WaitingOnKeyFilter,
    )
    search_fields = ("=event__public_id", "=event__idempotency_key")
    list_select_related = ("event", "endpoint")
    show_full_result_count = False
    actions = [replay_deliveries]
    inlines = [AttemptInline]
    readonly_fields = ("waiting_behind",)

    @admin.display(description="status", ordering="status")
    def status_shown(self, delivery: Delivery) -> str:
        """The stored status, and whether a pending one waits on its ordering key."""
        if delivery.status == Delivery.Status.PENDING and delivery.waiting_on_key:
            return "pending (waiting on its key)"
        return delivery.status

    @admin.display(description="waiting")
    def waiting_behind(self, delivery: Delivery) -> SafeString | str:
        """Which delivery of its ordering key this one waits behind, linked."""
        if delivery.status != Delivery.Status.PENDING or not delivery.waiting_on_key:
            return "—"
        head = delivery_blocked_by(delivery)
        if head is None:
            return format_html(
                "Waiting for its turn in ordering key <code>{}</code>: it is the key's oldest "
                "pending delivery and goes next.",
                delivery.ordering_key,
            )
        return format_html(
            'Waiting behind <a href="{}">delivery #{}</a> '
            "(the head of ordering key <code>{}</code>)",
            reverse("admin:deliveries_delivery_change", args=[head]),
            head,
            delivery.ordering_key,
        )


@admin.register(DeadLetter)
class DeadLetterAdmin(QuickCheckboxMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
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
        ("endpoint__tenant", FewChoicesRelatedFilter),
        ("event__event_type", FewChoicesRelatedFilter),
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
class AttemptAdmin(QuickCheckboxMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
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
