"""Unknown query parameters under /api/ are a 400, as Stripe does.

A typo such as `?stauts=failed` would otherwise list every delivery, and the caller would act on
the wrong rows. The parameters each operation takes are read from the OpenAPI schema, built once
per process, so the schema and the server cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

from django.http import HttpRequest, HttpResponse, JsonResponse


@cache
def _operations() -> list[tuple[re.Pattern[str], dict[str, frozenset[str]]]]:
    """(path pattern, {method: query parameter names}) for every operation of the schema."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = []
    for template, path in schema["paths"].items():
        pattern = re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$")
        methods = {
            method.upper(): frozenset(
                parameter["name"]
                for parameter in operation.get("parameters", [])
                if parameter.get("in") == "query"
            )
            for method, operation in path.items()
        }
        operations.append((pattern, methods))
    return operations


def unknown_query_parameters(path: str, method: str, names: set[str]) -> list[str]:
    """The names an operation of the schema does not take; [] for paths outside the schema."""
    for pattern, methods in _operations():
        if pattern.match(path) and method in methods:
            return sorted(names - methods[method])
    return []


class RefuseUnknownQueryParametersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/v1/") and request.GET:
            unknown = unknown_query_parameters(request.path, request.method or "", set(request.GET))
            if unknown:
                return JsonResponse(
                    {
                        "code": "invalid",
                        "detail": f"Unknown query parameter {unknown[0][:100]!r}.",
                        "fields": {name[:100]: ["Unknown query parameter."] for name in unknown},
                    },
                    status=400,
                )
        return self.get_response(request)
