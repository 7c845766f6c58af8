"""Dashboard: "Test this filter against the last 20 events" on an endpoint's page."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from dashboard.access import dashboard_login_required, viewer_for
from dashboard.pages import htmx_of, render_page
from subscriptions.filters import filter_checked, filter_context, filter_evaluate, filter_problem
from subscriptions.models import TEST_EVENT_TYPE, VERIFICATION_EVENT_TYPE, Endpoint
from subscriptions.services import endpoint_set_filter
from webhooks.models import Event
from webhooks.wire import iso_timestamp

RECENT_EVENTS = 20
# Sent to one endpoint by Hookline itself, never through filters.
_OWN_EVENT_TYPES = (TEST_EVENT_TYPE, VERIFICATION_EVENT_TYPE)
PAYLOAD_PREVIEW = 120


@dataclass(frozen=True)
class Tried:
    """One recent event and what the filter made of it."""

    event: Event
    outcome: str  # "match", "miss" or "error"
    error: str = ""

    @property
    def payload_preview(self) -> str:
        text = self.event.payload_text
        if text is None:  # stored before the text was kept
            text = json.dumps(self.event.payload, ensure_ascii=False)
        return text if len(text) <= PAYLOAD_PREVIEW else text[:PAYLOAD_PREVIEW] + "…"


@dashboard_login_required
@require_POST
def filter_test(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """Evaluate the posted filter (or, without one, the endpoint's own) against the tenant's
    last events of the types the endpoint wants. Reads only: nothing is saved or sent."""
    viewer = viewer_for(request)
    endpoint = get_object_or_404(viewer.endpoints().select_related("tenant"), pk=endpoint_id)
    expression = request.POST.get("filter", endpoint.filter).strip()
    problem = filter_problem(expression)
    tried = [] if problem else _tried(endpoint, expression)
    context = {
        "endpoint": endpoint,
        "expression": expression,
        "problem": problem,
        "tried": tried,
        "matched": sum(1 for row in tried if row.outcome == "match"),
        "errors": sum(1 for row in tried if row.outcome == "error"),
        "recent": RECENT_EVENTS,
    }
    if htmx_of(request):
        return render_page(
            request, viewer, "dashboard/filter_test.html", context, section="endpoints",
            partial="dashboard/_filter_test_results.html",
        )  # fmt: skip
    return render_page(request, viewer, "dashboard/filter_test.html", context, section="endpoints")


@dashboard_login_required
@require_POST
def filter_save(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """Save the typed expression as the endpoint's filter; a refused one is shown with the
    problem, the text kept, and nothing saved."""
    viewer = viewer_for(request)
    viewer.require("manage_endpoints")
    endpoint = get_object_or_404(viewer.endpoints().select_related("tenant"), pk=endpoint_id)
    expression = request.POST.get("filter", "").strip()
    try:
        endpoint_set_filter(endpoint=endpoint, filter=expression)
    except ValidationError as error:
        [problem] = error.message_dict["filter"]
        context = {"endpoint": endpoint, "expression": expression, "problem": problem,
                   "tried": [], "recent": RECENT_EVENTS, "saving": True}  # fmt: skip
        if htmx_of(request):  # shown where test results go; htmx swaps only a 2xx answer
            return render_page(
                request, viewer, "dashboard/filter_test.html", context, section="endpoints",
                partial="dashboard/_filter_test_results.html",
            )  # fmt: skip
        messages.error(request, f"Filter not saved: {problem}")
        response = render_page(
            request, viewer, "dashboard/filter_test.html", context, section="endpoints"
        )
        response.status_code = 400
        return response
    saved = "Filter saved" if expression else "Filter removed"
    messages.success(request, f"{saved}: it chooses this endpoint's events from the next on.")
    page = reverse("dashboard:endpoint", args=[endpoint.pk])
    if htmx_of(request):  # a whole page load, to show the saved filter (a fragment would not)
        return HttpResponseClientRedirect(page)
    return redirect(page + "#filter")


def _tried(endpoint: Endpoint, expression: str) -> list[Tried]:
    program = filter_checked(expression) if expression else None
    tried = []
    for event in _recent_events(endpoint):
        if program is None:
            tried.append(Tried(event, "match"))
            continue
        variables = filter_context(
            event_type=event.event_type.name, data=event.payload, tenant=endpoint.tenant.slug,
            timestamp=iso_timestamp(event),
        )  # fmt: skip
        outcome = filter_evaluate(program, variables)
        state = "match" if outcome.matched else "error" if outcome.error else "miss"
        tried.append(Tried(event, state, outcome.error))
    return tried


def _recent_events(endpoint: Endpoint) -> QuerySet[Event]:
    """The tenant's latest events of the types the endpoint wants (none chosen: every type)."""
    events = Event.objects.filter(tenant_id=endpoint.tenant_id).exclude(
        event_type__name__in=_OWN_EVENT_TYPES
    )
    wanted = list(endpoint.event_types.values_list("id", flat=True))
    if wanted:
        events = events.filter(event_type_id__in=wanted)
    return events.select_related("event_type").order_by("-id")[:RECENT_EVENTS]
