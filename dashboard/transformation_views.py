"""Dashboard: an endpoint's transformation, previewed against a recent event, and saved."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from config.ids import whole_number
from dashboard.access import Viewer, dashboard_login_required, viewer_for
from dashboard.pages import htmx_of, render_page
from dashboard.transformation_preview import preview, recent_event, recent_events
from subscriptions.models import Endpoint
from subscriptions.services import endpoint_set_transformation
from webhooks.transformations import MAX_EXPRESSION_LENGTH

EXAMPLE = '{"text": "Order " & data.order_id & " paid"}'


def transformation_panel(
    endpoint: Endpoint, *, expression: str | None = None, event_id: str | None = None
) -> dict[str, Any]:
    """What the transformation panel shows: the expression (the saved one unless given), the
    events to try it on, and which one is chosen."""
    events = recent_events(endpoint)
    chosen = whole_number(event_id)
    return {
        "expression": endpoint.transformation if expression is None else expression,
        "saved": endpoint.transformation,
        "events": events,
        "event_id": chosen if chosen is not None else (events[0].id if events else None),
        "max_length": MAX_EXPRESSION_LENGTH,
        "example": EXAMPLE,
    }


@dashboard_login_required
def transformation_page(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """The panel on a page of its own, previewing the saved transformation on the latest event."""
    viewer = viewer_for(request)
    endpoint = _endpoint(viewer, endpoint_id)
    event = recent_event(endpoint, None)
    shown = preview(endpoint, event, endpoint.transformation) if event else None
    return _page(request, viewer, endpoint, transformation_panel(endpoint), shown)


@dashboard_login_required
@require_POST
def transformation_preview(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """The typed expression tried on the chosen event: a fragment for htmx, else the page."""
    viewer = viewer_for(request)
    endpoint = _endpoint(viewer, endpoint_id)
    expression = _typed(request)
    event_id = request.POST.get("event", "")
    event = recent_event(endpoint, event_id)
    if event is None:
        raise Http404("No such event for this endpoint's tenant.")
    shown = preview(endpoint, event, expression)
    context = {"endpoint": endpoint, "preview": shown, "saved": endpoint.transformation}
    if htmx_of(request):
        return render(request, "dashboard/_transformation_result.html", context)
    panel = transformation_panel(endpoint, expression=expression, event_id=event_id)
    return _page(request, viewer, endpoint, panel, shown)


@dashboard_login_required
@require_POST
def transformation_save(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """Save the typed expression as the endpoint's transformation; a refused one is shown with
    the problem, the text kept, and nothing saved."""
    viewer = viewer_for(request)
    viewer.require("manage_endpoints")
    endpoint = _endpoint(viewer, endpoint_id)
    expression = _typed(request)
    try:
        endpoint_set_transformation(endpoint=endpoint, transformation=expression)
    except ValidationError as error:
        [problem] = error.message_dict["transformation"]
        messages.error(request, f"Transformation not saved: {problem}")
        panel = transformation_panel(
            endpoint, expression=expression, event_id=request.POST.get("event")
        )
        return _page(request, viewer, endpoint, panel, None, status=400)
    saved = "Transformation saved" if expression else "Transformation removed"
    messages.success(request, f"{saved}: it applies from the next attempt on.")
    return redirect(reverse("dashboard:endpoint", args=[endpoint.pk]) + "#transformation")


def _endpoint(viewer: Viewer, endpoint_id: int) -> Endpoint:
    return get_object_or_404(viewer.endpoints().select_related("tenant"), pk=endpoint_id)


def _typed(request: HttpRequest) -> str:
    # Browsers send a textarea's line breaks as CRLF; JSONata reads either.
    return request.POST.get("transformation", "").strip()


def _page(
    request: HttpRequest,
    viewer: Viewer,
    endpoint: Endpoint,
    panel: dict[str, Any],
    shown: object,
    *,
    status: int = 200,
) -> HttpResponse:
    context = {"endpoint": endpoint, "transformation": panel, "preview": shown}
    response = render_page(
        request, viewer, "dashboard/endpoint_transformation.html", context, section="endpoints"
    )
    response.status_code = status
    return response
