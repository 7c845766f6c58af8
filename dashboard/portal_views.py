"""Opening a portal link: a dashboard session for one tenant, without a Django account."""

from __future__ import annotations

import ipaddress

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from dashboard.portal import SESSION_KEY, PortalLinkRefused, portal_link_open


# GET only: a HEAD from a link checker must not use the link up.
@require_GET
def open_portal(request: HttpRequest, token: str) -> HttpResponse:
    """Use the link up and send the browser on at once to a dashboard URL without the token."""
    try:
        link = portal_link_open(token=token, client_address=client_address(request))
    except PortalLinkRefused as refused:
        return portal_refused(request, refused)
    request.session.cycle_key()
    request.session[SESSION_KEY] = {"link": link.id}
    return _private(redirect("dashboard:overview"))


def portal_refused(request: HttpRequest, refused: PortalLinkRefused) -> HttpResponse:
    """The human page for a link or a portal session that may not be used."""
    response = render(
        request, "dashboard/portal_refused.html", {"reason": str(refused)}, status=refused.status
    )
    return _private(response)


def _private(response: HttpResponse) -> HttpResponse:
    # The token is in this request's URL: no cache keeps the answer, no Referer carries the URL.
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


def client_address(request: HttpRequest) -> str | None:
    address = request.META.get("REMOTE_ADDR", "")
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None
