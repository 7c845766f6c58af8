"""Dashboard: the endpoints list, those most in trouble first, filtered by state, event type and a
search over URL and description, a page of PAGE_SIZE at a time."""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from config.ids import whole_number
from dashboard import stats
from dashboard.access import dashboard_login_required, viewer_for
from dashboard.list_params import query_without
from dashboard.pages import render_page
from subscriptions.models import Endpoint, EventType

PAGE_SIZE = 50
SEARCH_MAX_LENGTH = 200
STATES = {
    "failing": Q(is_active=True, failing_since__isnull=False),
    "disabled": Q(is_active=False),
    "active": Q(is_active=True, failing_since__isnull=True),
}


@dashboard_login_required
def endpoint_list(request: HttpRequest) -> HttpResponse:
    """The endpoints in scope matching the filters, failing first, with their 24 h success rate
    and dead-letter count."""
    viewer = viewer_for(request)
    params = request.GET
    filters = {key: params.get(key, "") for key in ("state", "event_type", "q")}
    matching = _matching(viewer.endpoints(), filters)
    total = matching.count()
    last_page = max(1, -(-total // PAGE_SIZE))
    page = min(whole_number(params.get("page", "")) or 1, last_page)
    start = (page - 1) * PAGE_SIZE
    ranked = stats.endpoints_by_trouble(
        matching.select_related("tenant").prefetch_related("event_types")
    )
    shown = list(ranked[start : start + PAGE_SIZE])
    context: dict[str, Any] = {
        "rows": stats.endpoint_rows(shown, timezone.now()),
        "endpoint_total": total,
        "first": start + 1,
        "last": start + len(shown),
        "previous_page": page - 1 if page > 1 else None,
        "next_page": page + 1 if page < last_page else None,
        "filters": filters,
        "any_endpoint": total > 0 or viewer.endpoints().exists(),
        "states": list(STATES),
        "event_types": EventType.objects.filter(archived=False).values_list("name", flat=True),
        "query_string": query_without(request, "page"),
    }
    return render_page(
        request, viewer, "dashboard/endpoints.html", context,
        section="endpoints", partial="dashboard/_endpoint_table.html",
    )  # fmt: skip


def _matching(endpoints: QuerySet[Endpoint], filters: dict[str, str]) -> QuerySet[Endpoint]:
    if filters["state"] in STATES:
        endpoints = endpoints.filter(STATES[filters["state"]])
    if event_type := filters["event_type"]:
        # Subscribed to it by name, or to every event type (none chosen).
        chosen = Endpoint.event_types.through.objects.filter(endpoint_id=OuterRef("pk"))
        endpoints = endpoints.filter(
            Exists(chosen.filter(eventtype__name=event_type)) | ~Exists(chosen)
        )
    if search := filters["q"].strip()[:SEARCH_MAX_LENGTH]:
        endpoints = endpoints.filter(Q(url__icontains=search) | Q(description__icontains=search))
    return endpoints
