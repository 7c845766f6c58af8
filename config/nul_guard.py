"""Refuse URLs holding the NUL character, in the path or the query string.

PostgreSQL rejects NUL in any text value, even in a lookup, so a `%00` that reached a query
would be a server error. Paths answer 404 (no object has such a name), query strings 400.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from config.api_errors import error_response

PATH_DETAIL = "Not found: a URL path cannot contain the NUL character (%00)."
QUERY_DETAIL = "Query parameters cannot contain the NUL character (%00)."


class RejectNulMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path:
            return error_response(request, status=404, code="not_found", detail=PATH_DETAIL)
        if any("\x00" in key or any("\x00" in value for value in values)
               for key, values in request.GET.lists()):  # fmt: skip
            return error_response(request, status=400, code="invalid", detail=QUERY_DETAIL)
        return self.get_response(request)
