from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.db import models
from django.utils import timezone

from subscriptions.models import ApiKey, Endpoint, EventType, Tenant
from subscriptions.services import (
    api_key_create,
    endpoint_disable,
    endpoint_enable,
    endpoint_rotate_secret,
)
from webhooks.errors import EventError


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    fields = ("name", "prefix", "is_staff", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "created_at", "last_used_at")
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        # Keys are issued with `createtenant` or the API, which show the key once.
        return False


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "is_active", "created_at")
    search_fields = ("slug", "name")
    filter_horizontal = ("members",)
    inlines = [ApiKeyInline]
    actions = ["create_api_key"]

    @admin.action(description="Create an API key for selected tenants (shown once)")
    def create_api_key(self, request, queryset) -> None:  # noqa: ANN001
        for tenant in queryset:
            _, key = api_key_create(tenant=tenant, name=f"created by {request.user.get_username()}")
            self.message_user(
                request, f"API key for {tenant.slug}, shown only now: {key}", messages.WARNING
            )


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "tenant", "name", "is_staff", "last_used_at", "revoked_at")
    list_filter = ("is_staff", ("revoked_at", admin.EmptyFieldListFilter))
    list_select_related = ("tenant",)
    actions = ["revoke"]

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset) -> None:  # noqa: ANN001
        revoked = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {revoked} keys.", messages.SUCCESS)

    readonly_fields = ("prefix", "created_at", "last_used_at")
    exclude = ("key_hash",)

    def has_add_permission(self, request) -> bool:  # noqa: ANN001
        return False


@admin.register(EventType)
class EventTypeAdmin(admin.ModelAdmin):
    list_display = ("name", "description", "archived", "created_at")
    list_filter = ("archived",)
    search_fields = ("name",)


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = (
        "url",
        "tenant",
        "is_active",
        "payload_format",
        "disabled_reason",
        "failing_since",
        "created_at",
    )
    list_filter = ("is_active", "payload_format")
    list_select_related = ("tenant",)
    search_fields = ("url", "tenant__slug")
    filter_horizontal = ("event_types",)
    exclude = ("secret", "previous_secret", "previous_secret_expires_at")
    readonly_fields = (
        "disabled_at",
        "failing_since",
        "last_success_at",
        "created_at",
        "updated_at",
    )
    actions = ["send_test_event", "rotate_secret", "enable", "disable"]

    def get_readonly_fields(self, request, obj=None) -> tuple[str, ...]:  # noqa: ANN001
        # Enabling and disabling go through the actions, which also resume or hold the
        # endpoint's waiting deliveries and tell people; a checkbox would only flip the flag.
        fields = super().get_readonly_fields(request, obj)
        return (*fields, "is_active") if obj is not None else fields

    def save_model(self, request, obj, form, change) -> None:  # noqa: ANN001
        super().save_model(request, obj, form, change)
        if not change:
            self.message_user(
                request,
                f"Signing secret of {obj.url}, shown only now: {obj.secret}",
                messages.WARNING,
            )

    @admin.action(description="Send a test event to selected endpoints")
    def send_test_event(self, request, queryset) -> None:  # noqa: ANN001
        from deliveries.selectors import attempts_wait
        from webhooks.services import event_send_test

        sent = {}
        for endpoint in queryset.filter(is_active=True):
            try:
                sent[event_send_test(endpoint=endpoint).id] = endpoint
            except EventError as error:
                self.message_user(request, f"No test event sent: {error}", messages.ERROR)
                break
        # Workers send them; the page waits a bounded while for their attempts, once for all.
        attempts = attempts_wait(
            delivery_ids=list(sent), seconds=settings.WEBHOOKS_TEST_WAIT_SECONDS
        )
        for delivery_id, endpoint in sent.items():
            self._report_test(request, endpoint, attempts.get(delivery_id))

    def _report_test(self, request, endpoint: Endpoint, attempt) -> None:  # noqa: ANN001
        if attempt is None:
            self.message_user(
                request,
                f"Test event to {endpoint.url} queued: a worker is sending it.",
                messages.INFO,
            )
        elif attempt.succeeded:
            self.message_user(
                request,
                f"Test event delivered to {endpoint.url}: HTTP {attempt.response_status} "
                f"in {attempt.duration_ms:.0f} ms.",
                messages.SUCCESS,
            )
        else:
            self.message_user(
                request,
                f"Test event to {endpoint.url} failed: {attempt.error_message}.",
                messages.ERROR,
            )

    @admin.action(description="Rotate the signing secret (the old one keeps signing for 24 h)")
    def rotate_secret(self, request, queryset) -> None:  # noqa: ANN001
        for endpoint in queryset:
            secret = endpoint_rotate_secret(endpoint=endpoint)
            self.message_user(
                request,
                f"New signing secret of {endpoint.url}, shown only now: {secret}",
                messages.WARNING,
            )

    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    @admin.action(description="Enable selected endpoints (waiting deliveries resume)")
    def enable(self, request, queryset) -> None:  # noqa: ANN001
        endpoints = list(queryset)
        for endpoint in endpoints:
            endpoint_enable(endpoint=endpoint)
        self.message_user(request, f"Enabled {len(endpoints)} endpoints.", messages.SUCCESS)

    @admin.action(description="Disable selected endpoints")
    def disable(self, request, queryset) -> None:  # noqa: ANN001
        who = request.user.get_username()
        disabled = endpoint_disable(
            endpoint_ids=queryset.values_list("id", flat=True), reason=f"Disabled by {who}."
        )
        self.message_user(request, f"Disabled {len(disabled)} endpoints.", messages.SUCCESS)
