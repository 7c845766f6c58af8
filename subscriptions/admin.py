from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.formats import date_format
from django.utils.functional import lazy
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from deliveries.models import Attempt
from deliveries.selectors import Backlog, attempts_wait, backlogs_by_tenant
from subscriptions.headers import headers_with_kept_values, masked_headers
from subscriptions.models import ApiKey, Endpoint, EventType, OrganisationKey, Tenant
from subscriptions.services import (
    api_key_create,
    endpoint_add,
    endpoint_disable,
    endpoint_enable,
    endpoint_limit_check,
    endpoint_rotate_secret,
    organisation_key_issue,
)
from subscriptions.verification import (
    EndpointVerifiedError,
    endpoint_url_changed,
    endpoint_verification_retry,
)
from webhooks.errors import EventError
from webhooks.services import event_send_test


@dataclass(frozen=True)
class ShownOnce:
    label: str
    secret: str
    note: str = ""


def shown_once_page(
    request: HttpRequest, *, title: str, intro: str, rows: list[ShownOnce], next_url: str
) -> TemplateResponse:
    """A page that shows new secrets in its own body, once.

    Never a message: Django's messages travel in a cookie, signed but not encrypted, and fall
    back to the session table; a secret in either would outlive this page.
    """
    context = {
        **admin.site.each_context(request),
        "title": title,
        "intro": intro,
        "rows": rows,
        "next_url": next_url,
    }
    response = TemplateResponse(request, "admin/subscriptions/shown_once.html", context)
    add_never_cache_headers(response)  # also keeps it out of the browser's back-button cache
    return response


def overlap_text(seconds: int) -> str:
    """WEBHOOKS_SECRET_ROTATION_OVERLAP in words: `24 h`, `1 h 30 min`, `45 s`."""
    if seconds <= 0:
        return "no time (it stops at once)"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h" * bool(hours), f"{minutes} min" * bool(minutes), f"{secs} s" * bool(secs)]
    return " ".join(part for part in parts if part)


def _rotate_description() -> str:
    overlap = overlap_text(settings.WEBHOOKS_SECRET_ROTATION_OVERLAP)
    return f"Rotate the signing secret (the old one keeps signing for {overlap})"


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    fields = ("name", "prefix", "is_staff", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "created_at", "last_used_at")
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        # Keys are issued with `createtenant` or the API, which show the key once.
        return False


BACKLOG_PARTS = (
    ("due", "due"),
    ("scheduled", "later"),
    ("held", "held by a circuit"),
    ("parked", "parked"),
    ("waiting", "waiting on a key"),
    ("unverified", "awaiting verification"),
)


def backlog_html(backlog: Backlog) -> SafeString | str:
    """`3 due · 12 held by a circuit`: the parts that are not zero, or a dash."""
    counts = [(getattr(backlog, name), label) for name, label in BACKLOG_PARTS]
    parts = [(f"{count:,}", label) for count, label in counts if count]
    return format_html_join(" · ", "{} {}", parts) if parts else "—"


class TenantChangeList(ChangeList):
    """Reads the backlog of the page's tenants in one query, not one per row."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        tenants = list(self.result_list)
        backlogs = backlogs_by_tenant(tenants=[t.pk for t in tenants], at=timezone.now())
        for tenant in tenants:
            tenant._backlog = backlogs.get(tenant.pk, Backlog())


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = (
        "slug", "name", "is_active", "delivery_weight", "verify_endpoints",
        "max_events_per_second", "retention_days", "backlog", "created_at",
    )  # fmt: skip
    readonly_fields = ("backlog",)
    search_fields = ("slug", "name")
    filter_horizontal = ("members",)
    inlines = [ApiKeyInline]
    actions = ["create_api_key", "create_staff_api_key"]

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return TenantChangeList

    @admin.display(description="pending deliveries")
    def backlog(self, tenant: Tenant) -> SafeString | str:
        """Its pending deliveries by what they wait for: read for the whole changelist page at
        once (TenantChangeList), or for this tenant alone on its change page."""
        if tenant.pk is None:
            return "—"
        backlog = getattr(tenant, "_backlog", None)
        if backlog is None:
            backlog = backlogs_by_tenant(tenants=[tenant.pk], at=timezone.now()).get(tenant.pk)
        return backlog_html(backlog or Backlog())

    @admin.action(description="Create an API key for selected tenants (shown once)")
    def create_api_key(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> TemplateResponse:
        who = request.user.get_username()
        rows = [
            ShownOnce(
                label=tenant.slug, secret=api_key_create(tenant=tenant, name=f"created by {who}")[1]
            )
            for tenant in queryset
        ]
        return shown_once_page(
            request,
            title="New API keys",
            intro="API keys, shown only now: copy them. Hookline keeps only their hash.",
            rows=rows,
            next_url=reverse("admin:subscriptions_tenant_changelist"),
        )

    @admin.action(
        description="Create a staff API key for selected tenants (shown once)",
        permissions=["create_staff_key"],
    )
    def create_staff_api_key(
        self, request: HttpRequest, queryset: QuerySet[Tenant]
    ) -> TemplateResponse:
        who = request.user.get_username()
        rows = [
            ShownOnce(
                label=tenant.slug,
                secret=api_key_create(
                    tenant=tenant, name=f"staff key created by {who}", is_staff=True
                )[1],
                note="Staff: may also change the event-type catalog.",
            )
            for tenant in queryset
        ]
        return shown_once_page(
            request,
            title="New staff API keys",
            intro="Staff API keys, shown only now: copy them. Hookline keeps only their hash.",
            rows=rows,
            next_url=reverse("admin:subscriptions_tenant_changelist"),
        )

    def has_create_staff_key_permission(self, request: HttpRequest) -> bool:
        # A staff key changes the catalog every tenant shares: issuing one is issuing an API key.
        return request.user.has_perm("subscriptions.add_apikey")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "tenant", "name", "is_staff", "last_used_at", "revoked_at")
    list_filter = ("is_staff", ("revoked_at", admin.EmptyFieldListFilter))
    list_select_related = ("tenant",)
    actions = ["revoke"]

    @admin.action(description="Revoke selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {revoked} keys.", messages.SUCCESS)

    readonly_fields = ("prefix", "created_at", "last_used_at")
    exclude = ("key_hash",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(OrganisationKey)
class OrganisationKeyAdmin(admin.ModelAdmin):
    """Organisation keys: adding one shows the key once, on a page of its own."""

    list_display = ("prefix", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    readonly_fields = ("prefix", "created_at", "last_used_at")
    fields = ("name", "prefix", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def get_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        # A new key is given only its name; the rest is made when it is saved.
        return self.fields if obj else ("name",)

    def save_model(
        self, request: HttpRequest, obj: OrganisationKey, form: forms.ModelForm, change: bool
    ) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        request._shown_once = organisation_key_issue(organisation_key=obj)  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: OrganisationKey, post_url_continue: str | None = None
    ) -> HttpResponse:
        return shown_once_page(
            request,
            title="New organisation key",
            intro="The organisation key, shown only now: copy it. Hookline keeps only its hash.",
            rows=[ShownOnce(label=obj.name, secret=request._shown_once)],  # type: ignore[attr-defined]
            next_url=reverse("admin:subscriptions_organisationkey_changelist"),
        )

    @admin.action(description="Revoke selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[OrganisationKey]) -> None:
        revoked = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {revoked} keys.", messages.SUCCESS)


@admin.register(EventType)
class EventTypeAdmin(admin.ModelAdmin):
    list_display = ("name", "description", "archived", "created_at")
    list_filter = ("archived",)
    search_fields = ("name",)


class MaskedHeadersField(forms.JSONField):
    """The custom headers as JSON, each value masked; a masked value left as it is keeps the
    stored value (subscriptions.headers)."""

    def bound_data(self, data: Any, initial: Any) -> Any:
        # A form shown again after an error keeps what the operator typed, so a new value is
        # not turned into a mask that no longer matches anything stored.
        return data if isinstance(data, str) else super().bound_data(data, initial)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return value
        if isinstance(value, dict):
            return json.dumps(masked_headers(value), ensure_ascii=False)
        return super().prepare_value(value)


class EndpointAdminForm(forms.ModelForm):
    headers = MaskedHeadersField(
        required=False,
        help_text="Extra headers sent each time, as JSON. Values are shown masked (••••abcd): "
        "leave a masked value as it is to keep it, or type the full new value. The object "
        "replaces the whole set.",
    )
    # No Meta: the admin builds it from EndpointAdmin (its fields and `exclude`).

    def clean_headers(self) -> object:
        given = self.cleaned_data.get("headers")
        if given is None:
            return {}
        stored = self.instance.headers if self.instance.pk else {}
        try:
            return headers_with_kept_values(given=given, stored=stored)
        except ValidationError as error:
            raise forms.ValidationError(error.messages) from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        tenant = cleaned.get("tenant")
        if self.instance.pk is None and tenant is not None:
            # The admin validates and saves in one transaction, so the tenant's row stays locked
            # from this check to the save: the answer on the form holds.
            try:
                endpoint_limit_check(tenant_id=tenant.pk)
            except ValidationError as error:
                self.add_error("tenant", error)
        return cleaned


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    form = EndpointAdminForm
    list_display = (
        "url",
        "tenant",
        "is_active",
        "verification",
        "payload_format",
        "disabled_reason",
        "failing_since",
        "created_at",
        "deliveries_link",
    )
    list_filter = ("is_active", "payload_format")
    list_select_related = ("tenant",)
    search_fields = ("url", "tenant__slug")
    filter_horizontal = ("event_types",)
    form = EndpointAdminForm
    exclude = ("secret",)
    readonly_fields = (
        "previous_secrets_signing",
        "verified_at",
        "disabled_at",
        "failing_since",
        "last_success_at",
        "created_at",
        "updated_at",
    )
    actions = ["send_test_event", "rotate_secret", "enable", "disable", "verify"]

    def get_readonly_fields(
        self, request: HttpRequest, obj: Model | None = None
    ) -> tuple[str, ...]:
        # Enabling and disabling go through the actions, which also resume or hold the
        # endpoint's waiting deliveries and tell people; a checkbox would only flip the flag.
        fields = super().get_readonly_fields(request, obj)
        return (*fields, "is_active") if obj is not None else tuple(fields)

    def save_model(
        self, request: HttpRequest, obj: Endpoint, form: forms.ModelForm, change: bool
    ) -> None:
        if change:
            previous_url = form.initial.get("url", obj.url)
            super().save_model(request, obj, form, change)
            # The admin saves in one transaction: a new URL's challenge commits with it.
            endpoint_url_changed(endpoint=obj, previous_url=previous_url)
            return
        endpoint_add(endpoint=obj)  # its event types follow in save_related

    def response_add(
        self, request: HttpRequest, obj: Endpoint, post_url_continue: str | None = None
    ) -> HttpResponse:
        if IS_POPUP_VAR in request.POST:
            return super().response_add(request, obj, post_url_continue)
        return shown_once_page(
            request,
            title="Endpoint added",
            intro="The signing secret, shown only now: copy it to the receiver. "
            "Hookline keeps it encrypted and never shows it again.",
            rows=[ShownOnce(label=obj.url, secret=obj.secret)],
            next_url=self._next_after_add(request, obj),
        )

    def _next_after_add(self, request: HttpRequest, obj: Endpoint) -> str:
        """Where the admin's own redirect would have gone: its "Save and …" buttons still work."""
        if "_continue" in request.POST:
            return reverse("admin:subscriptions_endpoint_change", args=[obj.pk])
        if "_addanother" in request.POST:
            return reverse("admin:subscriptions_endpoint_add")
        return reverse("admin:subscriptions_endpoint_changelist")

    @admin.display(description="Replaced secrets still signing")
    def previous_secrets_signing(self, obj: Endpoint) -> str:
        valid = obj.valid_previous_secrets() if obj.pk else []
        if not valid:
            return "None"
        return "; ".join(f"one until {date_format(p.expires_at, 'DATETIME_FORMAT')}" for p in valid)

    @admin.display(description="deliveries")
    def deliveries_link(self, obj: Endpoint) -> SafeString:
        """Its deliveries: the deliveries list's endpoint filter lists only a few endpoints."""
        deliveries = reverse("admin:deliveries_delivery_changelist")
        return format_html('<a href="{}?endpoint__id__exact={}">Deliveries</a>', deliveries, obj.pk)

    @admin.display(description="ownership", ordering="verified_at")
    def verification(self, obj: Endpoint) -> str:
        return "unverified" if obj.verified_at is None else "verified"

    @admin.action(description="Send a test event to selected endpoints")
    def send_test_event(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        unverified = queryset.filter(is_active=True, verified_at=None).count()
        if unverified:
            self.message_user(
                request,
                f"{unverified} unverified endpoints skipped: they receive nothing but their "
                "ownership challenge until they echo it.",
                messages.WARNING,
            )
        sent = {}
        for endpoint in queryset.filter(is_active=True).exclude(verified_at=None):
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

    def _report_test(
        self, request: HttpRequest, endpoint: Endpoint, attempt: Attempt | None
    ) -> None:
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

    @admin.action(description=lazy(_rotate_description, str)())
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> TemplateResponse:
        rows = []
        for endpoint in queryset:
            rotation = endpoint_rotate_secret(endpoint=endpoint)
            until = date_format(rotation.previous_secret_expires_at, "DATETIME_FORMAT")
            rows.append(
                ShownOnce(
                    label=endpoint.url,
                    secret=rotation.secret,
                    note=f"The secret it replaced keeps signing until {until}.",
                )
            )
        overlap = overlap_text(settings.WEBHOOKS_SECRET_ROTATION_OVERLAP)
        return shown_once_page(
            request,
            title="Signing secrets rotated",
            intro=f"New signing secrets, shown only now: copy them to the receivers. The secrets "
            f"they replaced keep signing for {overlap}, and secrets replaced earlier until their "
            "own expiry.",
            rows=rows,
            next_url=reverse("admin:subscriptions_endpoint_changelist"),
        )

    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    @admin.action(description="Enable selected endpoints (waiting deliveries resume)")
    def enable(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        endpoints = list(queryset)
        for endpoint in endpoints:
            endpoint_enable(endpoint=endpoint)
        self.message_user(request, f"Enabled {len(endpoints)} endpoints.", messages.SUCCESS)

    @admin.action(description="Disable selected endpoints")
    def disable(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        who = request.user.get_username()
        disabled = endpoint_disable(
            endpoint_ids=queryset.values_list("id", flat=True), reason=f"Disabled by {who}."
        )
        self.message_user(request, f"Disabled {len(disabled)} endpoints.", messages.SUCCESS)

    @admin.action(description="Send a new ownership challenge to selected unverified endpoints")
    def verify(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        challenged = trusted = verified = 0
        for endpoint in queryset.select_related("tenant"):
            try:
                if endpoint_verification_retry(endpoint=endpoint):
                    challenged += 1
                else:
                    trusted += 1
            except EndpointVerifiedError:
                verified += 1
        parts = [
            f"{challenged} sent a new challenge" * bool(challenged),
            f"{trusted} trusted (verification is off for their tenant)" * bool(trusted),
            f"{verified} skipped (verified already)" * bool(verified),
        ]
        summary = "; ".join(part for part in parts if part) or "No endpoints selected"
        self.message_user(request, f"{summary}.", messages.SUCCESS)
