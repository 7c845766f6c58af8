"""A list page's query string without the parameters that move through the list."""

from __future__ import annotations

from django.http import HttpRequest


def query_without(request: HttpRequest, *keys: str) -> str:
    """The request's query string without `keys`: a filter change starts the list afresh."""
    params = request.GET.copy()
    for key in keys:
        params.pop(key, None)
    return params.urlencode()
