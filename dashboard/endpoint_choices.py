"""The Endpoint filter of the delivery lists. While the viewer has few endpoints it is a select of
them all; past CHOICES_LIMIT it is a search box that fills the select with the endpoints whose URL
or description matches, so that a page never renders thousands of options."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from config.ids import whole_number
from dashboard.access import Viewer, dashboard_login_required, viewer_for
from subscriptions.models import Endpoint

CHOICES_LIMIT = 100
SEARCH_LIMIT = 50
SEARCH_MAX_LENGTH = 200


@dataclass
class EndpointChoices:
    """The select's options besides "Any", and whether a search box fills it."""

    endpoints: list[Endpoint]
    selected: int | None
    searchable: bool = False
    search: str = ""
    matched: int | None = None  # how many matched the search, up to SEARCH_LIMIT + 1

    @property
    def more(self) -> bool:
        """Whether more matched than are listed."""
        return self.matched is not None and self.matched > SEARCH_LIMIT


def endpoint_choices_for(viewer: Viewer, selected: int | None) -> EndpointChoices:
    """Every endpoint in scope when there are at most CHOICES_LIMIT, otherwise only the chosen
    one, with a search box to find the others."""
    endpoints = _options(viewer)
    first = list(endpoints[: CHOICES_LIMIT + 1])
    if len(first) <= CHOICES_LIMIT:
        return EndpointChoices(first, selected)
    chosen = list(endpoints.filter(id=selected)) if selected else []
    return EndpointChoices(chosen, selected, searchable=True)


@dashboard_login_required
def endpoint_choices(request: HttpRequest) -> HttpResponse:
    """The Endpoint filter's select for what was typed in its search box: the endpoints in
    scope whose URL or description contains it (or with that id), and the chosen one kept."""
    viewer = viewer_for(request)
    search = request.GET.get("search", "").strip()[:SEARCH_MAX_LENGTH]
    selected = whole_number(request.GET.get("endpoint", ""))
    endpoints = _options(viewer)
    matching = endpoints.filter(_matching(search))
    found = list(matching[: SEARCH_LIMIT + 1])
    shown = found[:SEARCH_LIMIT]
    if selected and all(endpoint.id != selected for endpoint in shown):
        shown = list(endpoints.filter(id=selected)) + shown
    choices = EndpointChoices(shown, selected, searchable=True, search=search, matched=len(found))
    return render(request, "dashboard/_endpoint_select.html", {"choices": choices})


def _options(viewer: Viewer) -> QuerySet[Endpoint]:
    return viewer.endpoints().only("id", "url").order_by("url", "id")


def _matching(search: str) -> Q:
    if not search:
        return Q()
    found = Q(url__icontains=search) | Q(description__icontains=search)
    if (endpoint_id := whole_number(search)) is not None:
        found |= Q(id=endpoint_id)
    return found
