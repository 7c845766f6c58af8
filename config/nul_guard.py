"""Refuse query strings holding the NUL character: PostgreSQL rejects it even in a lookup."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

DETAIL = "Query parameters cannot contain the NUL character (%00)."


class RejectNulQueryMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if any("\x00" in key or any("\x00" in value for value in values)
               for key, values in request.GET.lists()):  # fmt: skip
            if request.path.startswith("/api/"):
                return JsonResponse({"code": "invalid", "detail": DETAIL}, status=400)
            return HttpResponseBadRequest(DETAIL)
        return self.get_response(request)
