"""Unknown query parameters under /api/ are a 400, as Stripe does.

A typo such as `?stauts=failed` would otherwise list every delivery, and the caller would act on
the wrong rows. The parameters each operation takes are read from the OpenAPI schema, built once
per process, so the schema and the server cannot drift apart. A parameter whose names are open
(an object exploded into the query, such as `data.<path>=<value>`) states its names' pattern in
`propertyNames`, and names that match it are known. OpenAPI 3.0 validates with JSON Schema draft
4, which has no `propertyNames`: to a 3.0 tool, any name is allowed there, so the 400 for a name
that breaks the pattern says what the names are (tests/test_api_fuzz.py knows it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from django.http import HttpRequest, HttpResponse, JsonResponse


@dataclass(frozen=True)
class _OpenNames:
    """An object parameter exploded into the query: `<name>.<key>=<value>` for each key, the
    whole name matching `pattern`, and `rule` saying so in a sentence."""

    prefix: str
    pattern: re.Pattern[str]
    rule: str


@dataclass(frozen=True)
class _Known:
    """The query parameters of one operation: by name, and open names by their pattern."""

    names: frozenset[str]
    open_names: tuple[_OpenNames, ...]

    def unknown(self, names: set[str]) -> dict[str, str]:
        """Each name the operation does not take, with why."""
        unknown = {}
        for name in sorted(names - self.names):
            if any(open_names.pattern.fullmatch(name) for open_names in self.open_names):
                continue
            # The name may have been meant as one of the open names: say what those are.
            rules = [o.rule for o in self.open_names if name.startswith(o.prefix) and o.rule]
            rules = rules or [f"Unknown query parameter. {o.rule}" for o in self.open_names]
            unknown[name] = rules[0] if rules else "Unknown query parameter."
        return unknown


@cache
def _operations() -> list[tuple[re.Pattern[str], dict[str, _Known]]]:
    """(path pattern, {method: its query parameters}) for every operation of the schema."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = []
    for template, path in schema["paths"].items():
        pattern = re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$")
        methods = {
            method.upper(): _known(
                [p for p in operation.get("parameters", []) if p.get("in") == "query"]
            )
            for method, operation in path.items()
        }
        operations.append((pattern, methods))
    return operations


def _known(parameters: list[dict]) -> _Known:
    names, open_names = set(), []
    for parameter in parameters:
        property_names = parameter["schema"].get("propertyNames", {})
        if parameter.get("explode") and "pattern" in property_names:
            open_names.append(
                _OpenNames(
                    prefix=parameter["name"] + ".",
                    pattern=re.compile(property_names["pattern"]),
                    rule=property_names.get("description", ""),
                )
            )
        else:
            names.add(parameter["name"])
    return _Known(frozenset(names), tuple(open_names))


def unknown_query_parameters(path: str, method: str, names: set[str]) -> dict[str, str]:
    """The names an operation of the schema does not take, each with why; {} for paths outside
    the schema."""
    for pattern, methods in _operations():
        if pattern.match(path) and method in methods:
            return methods[method].unknown(names)
    return {}


class RefuseUnknownQueryParametersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/v1/") and request.GET:
            unknown = unknown_query_parameters(request.path, request.method or "", set(request.GET))
            if unknown:
                first = next(iter(unknown))
                return JsonResponse(
                    {
                        "code": "invalid",
                        "detail": f"Unknown query parameter {first[:100]!r}.",
                        "fields": {name[:100]: [why] for name, why in unknown.items()},
                    },
                    status=400,
                )
        return self.get_response(request)
