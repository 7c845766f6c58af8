"""Response headers that protect the dashboard: a Content Security Policy for its pages."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

# Everything the dashboard loads is its own: no CDN, no inline script. Inline style attributes
# (progress bars, chart sizes) are the one allowance.
DASHBOARD_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)
PROTECTED_PREFIXES = ("/dashboard/", "/accounts/")


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith(PROTECTED_PREFIXES):
            response.setdefault("Content-Security-Policy", DASHBOARD_CSP)
        return response
