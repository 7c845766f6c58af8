"""Response headers that protect the dashboard: a Content Security Policy for its pages."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from django.http import HttpRequest, HttpResponse


def dashboard_csp(*, frame_ancestors: Sequence[str] = (), image_origins: Sequence[str] = ()) -> str:
    """The dashboard's policy: everything it loads is its own (no CDN, no inline script; inline
    style attributes for progress bars and chart sizes are the one allowance). A portal session
    may also be framed by `frame_ancestors` and show its host's logo from `image_origins`."""
    images = " ".join(["'self'", "data:", *image_origins])
    ancestors = " ".join(frame_ancestors) or "'none'"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        f"img-src {images}; connect-src 'self'; form-action 'self'; "
        f"frame-ancestors {ancestors}; base-uri 'none'; object-src 'none'"
    )


DASHBOARD_CSP = dashboard_csp()
PROTECTED_PREFIXES = ("/dashboard/", "/accounts/")


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith(PROTECTED_PREFIXES):
            response.setdefault("Content-Security-Policy", DASHBOARD_CSP)
        return response
