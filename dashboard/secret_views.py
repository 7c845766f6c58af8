"""Dashboard: an endpoint's signing secret, revealed on an explicit click (with `view_secret`,
audit-logged) and rotated with a chosen overlap (with `manage_endpoints`)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from dashboard.access import Viewer, dashboard_login_required, viewer_for
from dashboard.models import SecretReveal
from dashboard.pages import htmx_of, render_page
from dashboard.secret_audit import secret_shown
from subscriptions.models import Endpoint
from subscriptions.services import endpoint_rotate_secret

# How long the replaced secret keeps signing: the rotate dialog's choices, in seconds.
ROTATION_OVERLAPS = {
    "0": "Immediately (it leaked)",
    "3600": "1 hour",
    "86400": "24 hours",
    "604800": "7 days",
}
DEFAULT_OVERLAP = "86400"
# The revealed value is hidden again in the page after this long.
REVEAL_SECONDS = 60


@dashboard_login_required
@require_POST
def secret_reveal(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """The full current secret: a fragment for htmx, else the endpoint page showing it."""
    viewer = viewer_for(request)
    viewer.require("view_secret")
    endpoint = _endpoint(viewer, endpoint_id)
    secret_shown(request=request, viewer=viewer, endpoint=endpoint, kind=SecretReveal.Kind.REVEAL)
    context = {"endpoint": endpoint, "secret": endpoint.secret, "hide_after": REVEAL_SECONDS}
    if htmx_of(request):
        response = render(request, "dashboard/_secret_revealed.html", context)
    else:
        response = render_page(
            request, viewer, "dashboard/endpoint_secret_shown.html",
            {**context, "heading": "Signing secret"}, section="endpoints",
        )  # fmt: skip
    response["Cache-Control"] = "no-store"
    return response


@dashboard_login_required
@require_POST
def secret_rotate(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """Rotate the secret; the new one is shown once to sessions that may see secrets."""
    viewer = viewer_for(request)
    viewer.require("manage_endpoints")
    endpoint = _endpoint(viewer, endpoint_id)
    overlap = request.POST.get("overlap", "")
    if overlap not in ROTATION_OVERLAPS:
        messages.error(request, "Not rotated: choose how long the current secret keeps working.")
        return redirect("dashboard:endpoint", endpoint_id=endpoint.pk)
    rotation = endpoint_rotate_secret(endpoint=endpoint, overlap_seconds=int(overlap))
    if not viewer.can_view_secret:
        messages.success(
            request,
            "Secret rotated. This session may not see secrets: ask for a link that may, or "
            "read the new one through the API.",
        )
        return redirect("dashboard:endpoint", endpoint_id=endpoint.pk)
    secret_shown(request=request, viewer=viewer, endpoint=endpoint, kind=SecretReveal.Kind.ROTATED)
    context = {
        "endpoint": endpoint,
        "secret": rotation.secret,
        "heading": "Secret rotated",
        "previous_until": rotation.previous_secret_expires_at if overlap != "0" else None,
    }
    response = render_page(
        request, viewer, "dashboard/endpoint_secret_shown.html", context, section="endpoints"
    )
    response["Cache-Control"] = "no-store"
    return response


def _endpoint(viewer: Viewer, endpoint_id: int) -> Endpoint:
    return get_object_or_404(viewer.endpoints().select_related("tenant"), pk=endpoint_id)
