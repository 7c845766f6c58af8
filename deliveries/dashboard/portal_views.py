"""Opening a portal link: a dashboard session for one tenant, without a Django account."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from deliveries.dashboard.portal import SESSION_KEY, PortalLinkError, portal_grant


def open_portal(request: HttpRequest, token: str) -> HttpResponse:
    try:
        grant = portal_grant(token)
    except PortalLinkError as error:
        return render(request, "dashboard/portal_refused.html", {"reason": str(error)}, status=403)
    request.session.cycle_key()
    request.session[SESSION_KEY] = grant.to_session()
    return redirect("dashboard:overview")
