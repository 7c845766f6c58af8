"""Dashboard: a tenant manages its own endpoints: add one, change its settings, disable, enable
and delete it. Each action needs `manage_endpoints`, acts only on the viewer's tenant (another
tenant's id is a 404 and changes nothing) and goes through subscriptions.services, as the API."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from dashboard.access import Viewer, dashboard_login_required, viewer_for
from dashboard.endpoint_forms import EndpointForm
from dashboard.event_type_picker import event_type_groups
from dashboard.models import SecretReveal
from dashboard.pages import render_page
from dashboard.secret_audit import secret_shown
from subscriptions.models import Endpoint
from subscriptions.services import (
    endpoint_add,
    endpoint_delete,
    endpoint_disable,
    endpoint_enable,
    endpoint_update,
)
from subscriptions.verification import verification_applies


@dashboard_login_required
def endpoint_new(request: HttpRequest) -> HttpResponse:
    """The add-endpoint page; a valid form stores the endpoint and shows its secret, once."""
    viewer = _managing(request)
    if viewer.tenant is None:
        messages.error(request, "Pick a tenant in the top bar, then add its endpoint.")
        return redirect("dashboard:endpoints")
    endpoint = Endpoint(tenant=viewer.tenant)
    form = EndpointForm(_posted(request), instance=endpoint)
    if request.method == "POST" and form.is_valid():
        try:
            endpoint_add(
                endpoint=form.save(commit=False), event_types=form.cleaned_data["event_types"]
            )
        except ValidationError as error:  # the tenant's limit of endpoints
            form.add_error(None, error)
        else:
            return _created(request, viewer, endpoint)
    return _form_page(request, viewer, form, endpoint=None)


@dashboard_login_required
def endpoint_settings(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """The Settings tab: the endpoint form filled in, and the danger zone."""
    viewer = _managing(request)
    endpoint = _endpoint(viewer, endpoint_id)
    previous_url = endpoint.url
    form = EndpointForm(_posted(request), instance=endpoint)
    if request.method == "POST" and form.is_valid():
        endpoint_update(
            endpoint=form.save(commit=False),
            previous_url=previous_url,
            event_types=form.cleaned_data["event_types"],
        )
        messages.success(request, "Settings saved.")
        if endpoint.url != previous_url and endpoint.verified_at is None:
            messages.info(request, "The URL changed: it must echo a new ownership challenge.")
        return redirect("dashboard:endpoint", endpoint_id=endpoint.pk)
    if request.method == "POST":
        endpoint.refresh_from_db()  # the form wrote its rejected values onto the instance
    return _form_page(request, viewer, form, endpoint=endpoint)


@dashboard_login_required
@require_POST
def endpoint_disable_view(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    viewer = _managing(request)
    endpoint = _endpoint(viewer, endpoint_id)
    who = "a portal session" if viewer.portal_link_id else request.user.get_username()
    if endpoint_disable(endpoint_ids=[endpoint.id], reason=f"Disabled in the dashboard by {who}."):
        messages.success(request, "Endpoint disabled: nothing is sent to it until you enable it.")
    return redirect("dashboard:endpoint", endpoint_id=endpoint.pk)


@dashboard_login_required
@require_POST
def endpoint_enable_view(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    viewer = _managing(request)
    endpoint = _endpoint(viewer, endpoint_id)
    if not endpoint.is_active:
        endpoint_enable(endpoint=endpoint)
        messages.success(request, "Endpoint enabled: its waiting deliveries resume.")
    return redirect("dashboard:endpoint", endpoint_id=endpoint.pk)


@dashboard_login_required
@require_POST
def endpoint_delete_view(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """Delete the endpoint once the host typed matches its URL's host; otherwise nothing."""
    viewer = _managing(request)
    endpoint = _endpoint(viewer, endpoint_id)
    typed = request.POST.get("confirm_host", "").strip().lower()
    if not typed or typed != endpoint_host(endpoint):
        messages.error(request, "Not deleted: type the endpoint's host exactly to confirm.")
        return redirect("dashboard:endpoint-settings", endpoint_id=endpoint.pk)
    url = endpoint.url
    endpoint_delete(endpoint=endpoint)
    messages.success(request, f"Endpoint {url} deleted, with its deliveries.")
    return redirect("dashboard:endpoints")


def endpoint_host(endpoint: Endpoint) -> str:
    """What "type the host to confirm" asks for."""
    return (urlsplit(endpoint.url).hostname or "").lower()


def _posted(request: HttpRequest) -> Any:
    return request.POST if request.method == "POST" else None


def _managing(request: HttpRequest) -> Viewer:
    viewer = viewer_for(request)
    viewer.require("manage_endpoints")
    return viewer


def _endpoint(viewer: Viewer, endpoint_id: int) -> Endpoint:
    return get_object_or_404(
        viewer.endpoints().select_related("tenant").prefetch_related("event_types"),
        pk=endpoint_id,
    )


def _created(request: HttpRequest, viewer: Viewer, endpoint: Endpoint) -> HttpResponse:
    """The new endpoint's secret, shown only in this answer (never in a cookie or the session)."""
    shown = viewer.can_view_secret
    if shown:
        secret_shown(
            request=request, viewer=viewer, endpoint=endpoint, kind=SecretReveal.Kind.CREATED
        )
    context = {
        "endpoint": endpoint,
        "secret": endpoint.secret if shown else None,
        "heading": "Endpoint added",
        "challenged": endpoint.verified_at is None and verification_applies(endpoint.tenant),
    }
    response = render_page(
        request, viewer, "dashboard/endpoint_secret_shown.html", context, section="endpoints"
    )
    response["Cache-Control"] = "no-store"
    return response


def _form_page(
    request: HttpRequest, viewer: Viewer, form: EndpointForm, *, endpoint: Endpoint | None
) -> HttpResponse:
    context: dict[str, Any] = {
        "form": form,
        "endpoint": endpoint,
        "groups": event_type_groups(form),
        "host": endpoint_host(endpoint) if endpoint else "",
        "tab": "settings",
    }
    response = render_page(
        request, viewer, "dashboard/endpoint_form.html", context, section="endpoints"
    )
    if form.is_bound and form.errors:
        response.status_code = 400
    return response
