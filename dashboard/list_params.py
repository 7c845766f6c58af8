"""Reading a list page's query parameters: ids, page numbers and the query string without the
parameters that move through the list."""

from __future__ import annotations

from django.http import HttpRequest


def positive_int(raw: str) -> int | None:
    """A positive id or page number from a query or form value, or None for anything else."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None


def query_without(request: HttpRequest, *keys: str) -> str:
    """The request's query string without `keys`: a filter change starts the list afresh."""
    params = request.GET.copy()
    for key in keys:
        params.pop(key, None)
    return params.urlencode()
