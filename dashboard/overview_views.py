"""Dashboard overview: is anything wrong, and where? Cards, endpoints at a glance, a 24 h chart."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from dashboard import stats
from dashboard.access import Viewer, dashboard_login_required, viewer_for
from dashboard.charts import stacked_hour_bars
from dashboard.pages import render_page

# The overview lists the endpoints most in trouble first; the Endpoints page has the rest.
OVERVIEW_ENDPOINTS = 50


@dashboard_login_required
def overview(request: HttpRequest) -> HttpResponse:
    """The last 24 hours in the viewer's scope, or an onboarding checklist without endpoints."""
    viewer = viewer_for(request)
    endpoints = viewer.endpoints()
    if not endpoints.exists():
        context: dict[str, Any] = {"onboarding": True}
    else:
        context = _overview_context(viewer, timezone.now())
    return render_page(request, viewer, "dashboard/overview.html", context, section="overview")


def _overview_context(viewer: Viewer, now: datetime) -> dict[str, Any]:
    endpoints = stats.endpoints_by_trouble(viewer.endpoints().select_related("tenant"))
    shown = list(endpoints[:OVERVIEW_ENDPOINTS])
    buckets = stats.hourly_attempts(stats.scope_hours(viewer), now)
    summary = stats.summary(viewer, now)
    return {
        "onboarding": False,
        "summary": summary,
        "backlog": summary.backlog,
        "rows": stats.endpoint_rows(shown, now),
        "endpoint_total": viewer.endpoints().count(),
        "has_deliveries": viewer.deliveries().exists(),
        "chart": stacked_hour_bars([(b.hour, b.succeeded, b.failed) for b in buckets]),
        "chart_total": sum(b.succeeded + b.failed for b in buckets),
        "now": now,
    }
