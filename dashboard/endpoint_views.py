"""Dashboard: one endpoint's page, "send test event" and "send a new
ownership challenge"."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.views.decorators.http import require_POST

from dashboard import stats
from dashboard.access import dashboard_login_required, viewer_for
from dashboard.charts import stacked_hour_bars
from dashboard.pages import render_page
from dashboard.secret_views import DEFAULT_OVERLAP, ROTATION_OVERLAPS
from dashboard.status import delivery_pill, last_result
from dashboard.transformation_views import transformation_panel
from deliveries.models import Attempt, HourlyStat
from deliveries.selectors import attempts_wait, challenge_pending_id
from subscriptions.examples import schema_example
from subscriptions.headers import masked_headers
from subscriptions.models import (
    SECRET_PREFIX,
    TEST_EVENT_TYPE,
    VERIFICATION_EVENT_TYPE,
    Endpoint,
    EventType,
    event_type_name_validator,
)
from subscriptions.verification import EndpointVerifiedError, endpoint_verification_retry
from webhooks.errors import EventError
from webhooks.services import event_send_test

RECENT_DELIVERIES = 20
# The presets the recover view accepts as `since` (deliveries_views.SINCE).
RECOVER_PRESETS = {
    "1h": ("1 hour", timedelta(hours=1)),
    "24h": ("24 hours", timedelta(days=1)),
    "7d": ("7 days", timedelta(days=7)),
    "30d": ("30 days", timedelta(days=30)),
}


@dashboard_login_required
def endpoint_detail(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """One endpoint: state, facts, 24 h stats, test sending, recovery and recent deliveries."""
    viewer = viewer_for(request)
    endpoint = get_object_or_404(
        viewer.endpoints().select_related("tenant").prefetch_related("event_types"),
        pk=endpoint_id,
    )
    now = timezone.now()
    pill, pill_title = stats.endpoint_pill(endpoint)
    context = {
        "endpoint": endpoint,
        "pill": pill,
        "pill_title": pill_title,
        "outcomes": stats.endpoint_outcomes([endpoint.id], now)[endpoint.id],
        "chart": _chart(endpoint, now),
        "facts": _facts(endpoint, now),
        "deliveries": _recent_deliveries(endpoint, now),
        "event_types": _test_event_types(),
        "challenge_id": _challenge_id(endpoint),
        "test_event_type": TEST_EVENT_TYPE,
        "recover": _recover_choices(endpoint, now),
        "now": now,
        "transformation": transformation_panel(endpoint),
        "rotation_overlaps": list(ROTATION_OVERLAPS.items()),
        "default_overlap": DEFAULT_OVERLAP,
    }
    return render_page(
        request, viewer, "dashboard/endpoint_detail.html", context, section="endpoints"
    )


@dashboard_login_required
@require_POST
def send_test(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """Send a test event to this endpoint alone through the workers, and show its delivery."""
    viewer = viewer_for(request)
    viewer.require("manage_endpoints")
    endpoint = get_object_or_404(viewer.endpoints(), pk=endpoint_id)
    if not endpoint.is_active:
        messages.error(request, "This endpoint is disabled: enable it before sending a test event.")
        return redirect("dashboard:endpoint", endpoint_id=endpoint.pk)
    if endpoint.verified_at is None:
        messages.error(
            request, "This endpoint is unverified: it receives nothing but its challenge."
        )
        return redirect("dashboard:endpoint", endpoint_id=endpoint.pk)
    name = request.POST.get("event_type", "").strip() or TEST_EVENT_TYPE
    if len(name) > 200 or not re.fullmatch(event_type_name_validator.regex, name):
        messages.error(request, "Test event not sent: pick an event type from the list.")
        return redirect("dashboard:endpoint", endpoint_id=endpoint.pk)
    try:
        delivery = event_send_test(endpoint=endpoint, event_type=name, payload=_example_of(name))
    except EventError as error:
        messages.error(request, f"Test event not sent: {error}")
        return redirect("dashboard:endpoint", endpoint_id=endpoint.pk)
    waited = attempts_wait(delivery_ids=[delivery.id], seconds=settings.WEBHOOKS_TEST_WAIT_SECONDS)
    _report_attempt(request, waited.get(delivery.id))
    return redirect("dashboard:delivery", delivery_id=delivery.pk)


@dashboard_login_required
@require_POST
def send_challenge(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """Send an unverified endpoint a new ownership challenge (or, with verification off for its
    tenant, trust it), and come back to its page."""
    viewer = viewer_for(request)
    viewer.require("manage_endpoints")
    endpoint = get_object_or_404(viewer.endpoints().select_related("tenant"), pk=endpoint_id)
    try:
        challenged = endpoint_verification_retry(endpoint=endpoint)
    except EndpointVerifiedError:
        messages.info(request, "This endpoint is verified already.")
        return redirect("dashboard:endpoint", endpoint_id=endpoint.pk)
    if challenged:
        messages.success(
            request,
            "New challenge sent. The endpoint is verified once its receiver echoes it; its "
            "events wait until then.",
        )
    else:
        messages.success(
            request, "Verification is off for this tenant: the endpoint is trusted, its events go."
        )
    return redirect("dashboard:endpoint", endpoint_id=endpoint.pk)


def _example_of(name: str) -> dict[str, Any] | None:
    """The example the catalog shows for a type with a schema, as the test payload (None: the
    generic test message, for a type without one)."""
    kind = EventType.objects.filter(name=name).only("schema").first()
    if kind is None or not kind.schema:
        return None
    example = schema_example(kind.schema)
    return example if isinstance(example, dict) else None


def _report_attempt(request: HttpRequest, attempt: Attempt | None) -> None:
    if attempt is None:
        messages.info(
            request, "Test event queued: a worker is sending it. This page shows the attempt."
        )
        return
    took = f"in {attempt.duration_ms:.0f} ms"
    if attempt.succeeded:
        messages.success(request, f"Test event delivered: HTTP {attempt.response_status} {took}")
    elif attempt.response_status is not None:
        messages.error(request, f"Test event failed: HTTP {attempt.response_status} {took}")
    else:
        reason = attempt.error_message or attempt.get_error_kind_display()
        messages.error(request, f"Test event failed {took}: {reason}")


def _test_event_types() -> QuerySet[EventType]:
    # Only Hookline sends challenges: a test send of one would be refused.
    kinds = EventType.objects.filter(archived=False).exclude(name=VERIFICATION_EVENT_TYPE)
    return kinds.order_by("name")


def _challenge_id(endpoint: Endpoint) -> int | None:
    """The delivery of the challenge an unverified endpoint has yet to echo."""
    if endpoint.verified_at is not None:
        return None
    return challenge_pending_id(endpoint_id=endpoint.id)


def _facts(endpoint: Endpoint, now: datetime) -> dict[str, Any]:
    """What the facts panel shows; secrets and header values never leave the server."""
    headers = endpoint.headers if isinstance(endpoint.headers, dict) else {}
    return {
        "event_types": [kind.name for kind in endpoint.event_types.all()],
        "headers": sorted(masked_headers(headers).items()),
        "secret_masked": _mask(endpoint.secret),
        "previous_secrets_until": [p.expires_at for p in endpoint.valid_previous_secrets(now)],
    }


def _mask(secret: str) -> str:
    return f"{SECRET_PREFIX}••••{secret[-4:]}" if len(secret) > len(SECRET_PREFIX) + 8 else "••••"


def _recent_deliveries(endpoint: Endpoint, now: datetime) -> list[tuple[Any, Any, str]]:
    latest = endpoint.deliveries.select_related("event__event_type").order_by("-id")
    return [(d, delivery_pill(d, now), last_result(d)) for d in latest[:RECENT_DELIVERIES]]


def _chart(endpoint: Endpoint, now: datetime) -> dict[str, Any]:
    buckets = stats.hourly_attempts(HourlyStat.objects.filter(endpoint=endpoint), now)
    return {
        "svg": stacked_hour_bars([(b.hour, b.succeeded, b.failed) for b in buckets]),
        "total": sum(b.succeeded + b.failed for b in buckets),
    }


def _recover_choices(endpoint: Endpoint, now: datetime) -> dict[str, Any]:
    """The recover dialog's presets, each with its absolute start and how many it would replay."""
    moments = {key: now - delta for key, (_, delta) in RECOVER_PRESETS.items()}
    counts = stats.dead_since_counts(endpoint, moments)
    presets = [
        {"value": key, "label": label, "since": moments[key], "count": counts[key]}
        for key, (label, _) in RECOVER_PRESETS.items()
    ]
    return {"presets": presets, "cap": stats.DEAD_COUNT_CAP, "dead_total": counts["total"]}
