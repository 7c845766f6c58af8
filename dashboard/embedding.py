"""Portal sessions inside an <iframe> on the host's own site, in the host's theme.

Every dashboard page refuses to be framed (`frame-ancestors 'none'`, `X-Frame-Options: DENY`),
except the pages of a portal-link session, and the link itself, when
WEBHOOKS_PORTAL_FRAME_ANCESTORS names the origins that may frame them: their CSP lists those
origins and X-Frame-Options goes (a browser that honours CSP ignores it anyway, and one that does
not would otherwise refuse the host). A themed link's logo origin is added to `img-src`.

A host on another site frames the portal as a third party: browsers send a SameSite=Lax cookie
to a cross-site frame neither on its navigations nor on its form posts, so the portal's session,
CSRF and messages cookies go out as `SameSite=None; Secure` on those responses. That needs HTTPS
(browsers drop `SameSite=None` without `Secure`), so over plain HTTP the cookies stay as they
are and only a host on the same site can embed the portal (docs/embedding.md).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.messages.storage.cookie import CookieStorage
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from config.security import dashboard_csp
from dashboard.access import portal_grant_of
from dashboard.portal import SESSION_KEY, PortalGrant, PortalLinkRefused

PORTAL_OPEN_VIEW = "dashboard:portal"


class PortalEmbeddingMiddleware:
    """Placed outside the session, CSRF, clickjacking and CSP middleware: it adjusts what they
    set."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith("/dashboard/"):
            return response
        grant = _portal_grant(request)
        if grant is None and not _opens_a_link(request):
            return response
        ancestors = settings.WEBHOOKS_PORTAL_FRAME_ANCESTORS
        logo_origin = grant.theme.logo_origin if grant is not None else ""
        response["Content-Security-Policy"] = dashboard_csp(
            frame_ancestors=ancestors, image_origins=[logo_origin] if logo_origin else []
        )
        if ancestors:
            del response["X-Frame-Options"]
            if request.is_secure():
                _cookies_for_a_frame(response)
        return response


def _portal_grant(request: HttpRequest) -> PortalGrant | None:
    session = getattr(request, "session", None)
    if session is None or not session.get(SESSION_KEY):
        return None
    try:
        return portal_grant_of(request)
    except PortalLinkRefused:
        return None


def _opens_a_link(request: HttpRequest) -> bool:
    try:
        return resolve(request.path_info).view_name == PORTAL_OPEN_VIEW
    except Resolver404:
        return False


def _cookies_for_a_frame(response: HttpResponse) -> None:
    names = {settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME, CookieStorage.cookie_name}
    for name, morsel in response.cookies.items():
        if name in names:
            morsel["samesite"] = "None"
            morsel["secure"] = True
