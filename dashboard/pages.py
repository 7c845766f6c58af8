"""Rendering shared by every dashboard page: the viewer, the nav section, the dead-letter badge."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.middleware import HtmxDetails

from dashboard.access import Viewer
from dashboard.stats import DEAD_COUNT_CAP
from deliveries.models import Delivery


def htmx_of(request: HttpRequest) -> HtmxDetails:
    """What htmx says about `request`: django-htmx's middleware sets it on every request."""
    return request.htmx  # type: ignore[attr-defined]


def render_page(
    request: HttpRequest,
    viewer: Viewer,
    template: str,
    context: dict[str, Any],
    *,
    section: str,
    partial: str | None = None,
) -> HttpResponse:
    """Render a full page, or only `partial` when htmx asks for a fragment."""
    htmx = htmx_of(request)
    if partial and htmx and not htmx.boosted:
        return render(request, partial, {"viewer": viewer, **context})
    dead = viewer.deliveries().filter(status=Delivery.Status.FAILED)
    dead_count = len(dead.values_list("id", flat=True)[: DEAD_COUNT_CAP + 1])
    return render(
        request,
        template,
        {"viewer": viewer, "section": section, "dead_count": dead_count, **context},
    )
