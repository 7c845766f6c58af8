"""Dashboard: deliveries list and detail, replay, dead letters and replay-job progress."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling

from config.ids import whole_number
from dashboard import stats
from dashboard.access import Viewer, dashboard_login_required, viewer_for
from dashboard.endpoint_choices import endpoint_choices_for
from dashboard.list_params import query_without
from dashboard.pages import htmx_of, render_page
from dashboard.status import ERROR_HINTS, FILTERS, delivery_pill, last_result
from deliveries.models import Delivery, ReplayJob
from deliveries.ordering import delivery_blocked_by
from deliveries.services import deliveries_replay, replay_job_start
from subscriptions.models import EventType

PAGE_SIZE = 50
SINCE = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7),
         "30d": timedelta(days=30)}  # fmt: skip


@dashboard_login_required
def delivery_list(request: HttpRequest) -> HttpResponse:
    viewer = viewer_for(request)
    context = _list_context(request, viewer, viewer.deliveries())
    return render_page(
        request, viewer, "dashboard/deliveries.html", context,
        section="deliveries", partial="dashboard/_delivery_table.html",
    )  # fmt: skip


@dashboard_login_required
def dead_letters(request: HttpRequest) -> HttpResponse:
    viewer = viewer_for(request)
    dead = viewer.deliveries().filter(status=Delivery.Status.FAILED)
    context = _list_context(request, viewer, dead, fixed_status="dead")
    context["by_endpoint"] = _dead_by_endpoint(viewer)
    context["schedule"] = ", ".join(f"{delay:g} s" for delay in settings.WEBHOOKS_RETRY_SCHEDULE)
    context["jobs"] = viewer.replay_jobs().select_related("endpoint")[:10]
    return render_page(
        request, viewer, "dashboard/dead_letters.html", context,
        section="dead-letters", partial="dashboard/_delivery_table.html",
    )  # fmt: skip


@dashboard_login_required
def delivery_detail(request: HttpRequest, delivery_id: int) -> HttpResponse:
    viewer = viewer_for(request)
    delivery = get_object_or_404(
        viewer.deliveries().select_related("endpoint", "event__event_type"), pk=delivery_id
    )
    now = timezone.now()
    attempts = list(delivery.attempts.order_by("number"))
    timeline = []
    for index, attempt in enumerate(attempts):
        gap = attempt.started_at - attempts[index - 1].started_at if index else None
        timeline.append(
            {"attempt": attempt, "gap": gap, "hint": ERROR_HINTS.get(attempt.error_kind)}
        )
    siblings = (
        Delivery.objects.filter(event_id=delivery.event_id)
        .exclude(pk=delivery.pk)
        .select_related("endpoint")
    )
    context = {
        "delivery": delivery,
        "pill": delivery_pill(delivery, now),
        "timeline": timeline,
        "open_attempt": attempts[-1].number if attempts and not attempts[-1].succeeded else None,
        "siblings": [(d, delivery_pill(d, now)) for d in siblings[:20]],
        # The head is a delivery to the same endpoint, so of the same tenant: the viewer sees it.
        "blocked_by": delivery_blocked_by(delivery),
        "now": now,
    }
    return render_page(
        request, viewer, "dashboard/delivery_detail.html", context, section="deliveries"
    )


@dashboard_login_required
@require_POST
def replay_selected(request: HttpRequest) -> HttpResponse:
    viewer = viewer_for(request)
    viewer.require("replay")
    ids = [number for value in request.POST.getlist("ids") if (number := whole_number(value))]
    selected = viewer.deliveries().filter(id__in=ids)
    queued = deliveries_replay(deliveries=selected)
    skipped = len(ids) - queued
    note = f" {skipped} still pending were left as they are." if skipped else ""
    messages.success(request, f"Queued {queued} deliveries for replay.{note}")
    return redirect(_safe_next(request, reverse("dashboard:deliveries")))


@dashboard_login_required
@require_POST
def replay_one(request: HttpRequest, delivery_id: int) -> HttpResponse:
    viewer = viewer_for(request)
    viewer.require("replay")
    delivery = get_object_or_404(viewer.deliveries(), pk=delivery_id)
    if deliveries_replay(deliveries=Delivery.objects.filter(pk=delivery.pk)):
        messages.success(request, "Replay queued: one more attempt, with the same webhook-id.")
    else:
        messages.info(request, "This delivery is still pending: it is already queued.")
    return redirect("dashboard:delivery", delivery_id=delivery.pk)


@dashboard_login_required
@require_POST
def recover(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """Start a replay job for every dead delivery of an endpoint since the chosen time."""
    viewer = viewer_for(request)
    viewer.require("replay")
    endpoint = get_object_or_404(viewer.endpoints(), pk=endpoint_id)
    since = _parse_since(request.POST.get("since", ""))
    try:
        if since is None:
            raise ValidationError("Pick when to recover from.")
        job = replay_job_start(
            endpoint=endpoint, since=since, requested_by=request.user.get_username()
        )
    except ValidationError as error:
        messages.error(request, f"Nothing replayed: {error.messages[0]}")
        return redirect(_safe_next(request, reverse("dashboard:dead-letters")))
    return redirect("dashboard:replay-job", job_id=job.pk)


@dashboard_login_required
def replay_job(request: HttpRequest, job_id: int) -> HttpResponse:
    viewer = viewer_for(request)
    job = get_object_or_404(viewer.replay_jobs().select_related("endpoint"), pk=job_id)
    context = {"job": job, **_job_progress(job)}
    if htmx_of(request):
        response = render_page(
            request, viewer, "dashboard/_replay_progress.html", context,
            section="dead-letters", partial="dashboard/_replay_progress.html",
        )  # fmt: skip
        if context["finished"]:
            response.status_code = HttpResponseStopPolling.status_code
        return response
    return render_page(
        request, viewer, "dashboard/replay_job.html", context, section="dead-letters"
    )


def _job_progress(job: ReplayJob) -> dict[str, Any]:
    counts = dict(
        Delivery.objects.filter(replay_job=job)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    remaining = counts.get(Delivery.Status.PENDING, 0)
    delivered = counts.get(Delivery.Status.SUCCEEDED, 0)
    failed = counts.get(Delivery.Status.FAILED, 0)
    done = delivered + failed
    # A failed job queues nothing more: what it did queue still shows its progress.
    finished = job.status == ReplayJob.Status.FAILED or (
        job.status == ReplayJob.Status.DONE and remaining == 0
    )
    percent = 100 if finished or not job.replayed else round(100 * done / job.replayed)
    return {"remaining": remaining, "delivered": delivered, "failed_again": failed,
            "percent": percent, "finished": finished}  # fmt: skip


def _list_context(
    request: HttpRequest, viewer: Viewer, deliveries: QuerySet[Delivery], fixed_status: str = ""
) -> dict[str, Any]:
    params = request.GET
    status = fixed_status or params.get("status", "")
    filtered = _filter(deliveries, viewer, params, status)
    rows, newer, older = _page(filtered, params)
    now = timezone.now()
    return {
        "rows": [(d, delivery_pill(d, now), last_result(d)) for d in rows],
        "newer": newer,
        "older": older,
        "filters": {key: params.get(key, "") for key in ("endpoint", "event_type", "since", "q")},
        "status": status,
        "fixed_status": fixed_status,
        "statuses": list(FILTERS),
        "choices": endpoint_choices_for(viewer, whole_number(params.get("endpoint", ""))),
        "event_types": sorted(_event_type_names()),
        "since_choices": list(SINCE),
        "query_string": query_without(request, "before", "after"),
        "now": now,
    }


def _filter(
    deliveries: QuerySet[Delivery], viewer: Viewer, params: Any, status: str
) -> QuerySet[Delivery]:
    if status in FILTERS:
        deliveries = deliveries.filter(**FILTERS[status])
    if endpoint_id := whole_number(params.get("endpoint", "")):
        deliveries = deliveries.filter(endpoint_id=endpoint_id)
    if params.get("event_type"):
        deliveries = deliveries.filter(event__event_type__name=params["event_type"])
    if params.get("since") in SINCE:
        deliveries = deliveries.filter(created_at__gte=timezone.now() - SINCE[params["since"]])
    query = params.get("q", "").strip()
    if query:
        deliveries = (
            deliveries.filter(event__public_id=query)
            if query.startswith("msg_")
            else deliveries.filter(event__idempotency_key=query)
        )
    return deliveries


def _page(
    deliveries: QuerySet[Delivery], params: Any
) -> tuple[list[Delivery], int | None, int | None]:
    """Keyset pagination on the id: `before` pages to older rows, `after` to newer ones."""
    deliveries = deliveries.select_related("endpoint", "event__event_type")
    if after := whole_number(params.get("after", "")):
        rows = list(deliveries.filter(id__gt=after).order_by("id")[: PAGE_SIZE + 1])
        has_more_newer = len(rows) > PAGE_SIZE
        rows = list(reversed(rows[:PAGE_SIZE]))
        newer = rows[0].id if rows and has_more_newer else None
        older = rows[-1].id if rows else None
        return rows, newer, older
    if before := whole_number(params.get("before", "")):
        deliveries = deliveries.filter(id__lt=before)
    rows = list(deliveries.order_by("-id")[: PAGE_SIZE + 1])
    older = rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None
    rows = rows[:PAGE_SIZE]
    newer = rows[0].id if rows and params.get("before") else None
    return rows, newer, older


def _dead_by_endpoint(viewer: Viewer) -> list[dict[str, Any]]:
    """The endpoints with dead letters, most first (counted up to the cap), each with when its
    oldest and its newest dead letter were created and given up on."""
    dead = Delivery.objects.filter(endpoint=OuterRef("pk"), status=Delivery.Status.FAILED)
    endpoints = (
        viewer.endpoints()
        .annotate(
            count=stats.dead_letters_capped(),
            first=Subquery(dead.order_by("id").values("created_at")[:1]),
            last=Subquery(dead.order_by("-id").values("finished_at")[:1]),
        )
        .filter(count__gt=0)
        .order_by("-count", "url", "id")
    )
    return [
        {
            "endpoint_id": e.id,
            "endpoint__url": e.url,
            "endpoint__is_active": e.is_active,
            "count": e.count,
            "first": e.first,
            "last": e.last,
        }  # fmt: skip
        for e in endpoints[:50]
    ]


def _event_type_names() -> QuerySet:
    return EventType.objects.filter(archived=False).values_list("name", flat=True)


def _parse_since(raw: str) -> datetime | None:
    """A preset or an ISO time (naive: the current time zone); its range is checked on start."""
    if raw in SINCE:
        return timezone.now() - SINCE[raw]
    try:
        return parse_datetime(raw) if raw else None
    except ValueError:
        return None


def _safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next", "")
    return target if target.startswith("/dashboard/") else default
