"""NUL, lone surrogates and control characters through every parameter of every route: never a 5xx.

The routes come from the URL resolver, so a new route is covered the day it is added: API
routes with the path, query, header and body parameters their OpenAPI operation declares, pages
with every parameter name the dashboard's code and templates read. The API is called with a
staff API key (those under /api/v1/tenants/ with an organisation key); pages as a signed-in
staff user and as a portal session. Every answer must be
under 500, and every API error JSON.

Each route gets fixed attacks (every parameter of one place at once holding a NUL, a lone
surrogate or control characters; in JSON bodies also as list items and object keys), so that no
parameter goes untried, and a few drawn by hypothesis (one or several parameters, mixed
characters, with or without an otherwise valid body). About 30 s on a laptop.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from dashboard.portal import CAPABILITIES, portal_link_issue
from deliveries.models import Delivery, ReplayJob
from inbox.models import Inbox
from subscriptions.services import api_key_create, organisation_key_create
from subscriptions.throttling import ApiKeyRateThrottle
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event

pytestmark = pytest.mark.django_db

ROOT = Path(django_settings.BASE_DIR)
SKIPPED_PREFIXES = ("admin/",)  # Django's own admin
HTTP_METHODS = ("get", "post", "put", "patch", "delete")

# --- What is sent --------------------------------------------------------------------------------

NASTY = ["\x00", "\ud800", "\udbff", "\udc00", "\udfff", "\x01", "\x08", "\x1b", "\x7f", "\x85"]
ODD = ["\n", "\r", "\t", "\u2028", "\ufffe", "\ufeff", "%", "/", "..", "é", "a", "1", " "]
hostile_text = st.builds(
    lambda prefix, middle, suffix: prefix + middle + suffix,
    st.sampled_from(["", "order.paid", "msg_", "1", "http://127.0.0.1:9/", "view"]),
    st.lists(st.sampled_from(NASTY + ODD), min_size=1, max_size=6)
    .map("".join)
    .filter(lambda text: any(char in text for char in NASTY)),
    st.sampled_from(["", "x", "/"]),
)
# Headers travel as latin-1 (no surrogates); gunicorn refuses control characters in them, but
# another server might not.
hostile_header = st.text(
    alphabet=st.sampled_from(["\x00", "\x01", "\x1b", "\x7f", "\x85", "\xff", "\t", "a", " "]),
    min_size=1,
    max_size=8,
)
hostile_json = st.one_of(
    hostile_text,
    hostile_text,  # twice: most fields take a string
    st.lists(hostile_text, min_size=1, max_size=2),
    st.dictionaries(hostile_text, hostile_text, min_size=1, max_size=2),
    st.dictionaries(st.sampled_from(["order_id", "k"]), hostile_text, min_size=1, max_size=2),
)
# Valid values for body fields, so that a hostile value also reaches code behind validation.
VALID_BODY = {
    "url": "http://127.0.0.1:9/fuzz",
    "event_type": "order.paid",
    "event_types": ["order.paid"],
    "payload": {"order_id": "o-1"},
    "since": "2026-01-01T00:00:00Z",
    "name": "fuzz.created",
    "capabilities": ["view"],
    "expires_in": 60,
    "overlap_seconds": 0,
    "payload_format": "json",
    "events": [{"event_type": "order.paid", "payload": {"order_id": "o-1"}}],
    "atomic": False,
}


def encoded(text: str) -> str:
    """Percent-encoded as a client would send it: UTF-8, with surrogates as their raw bytes."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def form_body(fields: dict[str, str]) -> str:
    return "&".join(f"{encoded(name)}={encoded(value)}" for name, value in fields.items())


# --- Every route, from the URL resolver ----------------------------------------------------------


@dataclass(frozen=True)
class Route:
    template: str  # "/dashboard/endpoints/{endpoint_id}/", "/api/v1/endpoints/{pk}/"
    path_params: tuple[str, ...]

    @property
    def is_api(self) -> bool:
        return self.template.startswith("/api/v1/")

    @property
    def shape(self) -> str:
        return re.sub(r"\{[^}]+\}", "{}", self.template)

    def path(self, values: dict[str, str]) -> str:
        return self.template.format(**{name: encoded(str(v)) for name, v in values.items()})


def _template(route: str) -> tuple[str, tuple[str, ...]]:
    names: list[str] = []

    def param(match: re.Match) -> str:
        names.append(match.group("name"))
        return "{" + match.group("name") + "}"

    text = re.sub(r"\(\?P<(?P<name>\w+)>[^)]*\)", param, route)  # re_path() groups
    text = re.sub(r"<(?:\w+:)?(?P<name>\w+)>", param, text)  # path() converters
    text = text.replace("^", "").replace("$", "").replace("\\.", ".")
    return "/" + text, tuple(names)


def _walk(patterns: list, prefix: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern)


def all_routes() -> list[Route]:
    routes = []
    for raw in _walk(get_resolver().url_patterns):
        if raw.startswith(SKIPPED_PREFIXES) or "(?P<format>" in raw:
            continue  # format suffixes: the same views, as .json
        template, names = _template(raw)
        routes.append(Route(template, names))
    return routes


def api_operations() -> dict[tuple[str, str], dict]:
    """(route shape, method) -> {"query": […], "header": […], "body": […]} from the schema."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    operations = {}
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            params = operation.get("parameters", [])
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            ref = body.get("schema", {}).get("$ref", "")
            properties = components[ref.rsplit("/", 1)[-1]]["properties"] if ref else {}
            operations[(re.sub(r"\{[^}]+\}", "{}", path), method)] = {
                kind: [p["name"] for p in params if p["in"] == kind] for kind in ("query", "header")
            } | {"body": sorted(properties)}
    return operations


def page_parameter_names() -> list[str]:
    """Every query and form field name the dashboard's code or templates mention."""
    code = "\n".join(p.read_text() for p in (ROOT / "deliveries" / "dashboard").glob("*.py"))
    names = set(re.findall(r"(?:GET|POST|params)\.(?:get|getlist)\(\s*\"([^\"]+)\"", code))
    names |= set(re.findall(r"params\[\"([^\"]+)\"\]", code))
    templates = "\n".join(p.read_text() for p in (ROOT / "templates").rglob("*.html"))
    names |= set(re.findall(r"\bname=\"([A-Za-z_][\w-]*)\"", templates))
    return sorted(names)


ROUTES = all_routes()
OPERATIONS = api_operations()
PAGE_PARAMETERS = page_parameter_names()


def _targets() -> list:
    targets = []
    for route in ROUTES:
        if route.is_api:
            methods = [m for m in HTTP_METHODS if (route.shape, m) in OPERATIONS]
            for method in methods:
                fields = OPERATIONS[(route.shape, method)]
                name = f"{method} {route.template}"
                who = "org" if route.template.startswith("/api/v1/tenants/") else "api"
                targets.append(pytest.param(route, method, who, fields, id=name))
        else:
            fields = {"query": PAGE_PARAMETERS, "header": [], "body": PAGE_PARAMETERS}
            for method in ("get", "post"):
                for who in ("staff", "portal"):
                    name = f"{method} {route.template} as {who}"
                    targets.append(pytest.param(route, method, who, fields, id=name))
    return targets


TARGETS = _targets()


def test_every_route_is_covered():
    """The enumeration finds the routes (a guard against it silently finding none)."""
    api = {p.values[0].template for p in TARGETS if p.values[0].is_api}
    pages = {p.values[0].template for p in TARGETS if not p.values[0].is_api}
    assert {"/api/v1/endpoints/{pk}/test/", "/api/v1/portal-links/", "/api/v1/events/{id}/"} <= api
    assert "/api/v1/tenants/{tenant_slug}/api-keys/{pk}/" in api
    assert {"/dashboard/portal/{token}/", "/dashboard/inbox/endpoint/", "/inbox/{token}/"} <= pages
    # Every API route the resolver knows is described by the schema, so its fields are known.
    described = {shape for shape, _ in OPERATIONS}
    assert [r.template for r in ROUTES if r.is_api and r.shape not in described] == []
    assert {"q", "event_type", "since", "tenant", "ids", "next", "inbox"} <= set(PAGE_PARAMETERS)


# --- The world the requests land in ---------------------------------------------------------------


@pytest.fixture
def world(monkeypatch):
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "100000/s"})
    EventTypeFactory(name="order.paid")
    tenant = TenantFactory(slug="fuzz")
    endpoint = EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/hook")
    event = send_event(tenant, "order.paid", {"order_id": "o-1"})
    delivery = Delivery.objects.get(event=event)
    Delivery.objects.filter(id=delivery.id).update(status=Delivery.Status.FAILED)
    job = ReplayJob.objects.create(tenant=tenant, endpoint=endpoint, since=delivery.created_at)
    inbox = Inbox.objects.create(tenant=tenant)
    link, token = portal_link_issue(tenant=tenant, capabilities=CAPABILITIES, lifetime=3600)
    tenant_key, _ = api_key_create(tenant=tenant, name="listed")
    by_resource = {
        "api-keys": tenant_key.id,
        "endpoints": endpoint.id,
        "deliveries": delivery.id,
        "replay-jobs": job.id,
        "replays": job.id,
        "events": event.public_id,
        "event-types": "order.paid",
        "portal": token,
        "portal-links": link.id,
        "inbox": inbox.token,
        "tenants": tenant.slug,
    }
    return {"tenant": tenant, "by_resource": by_resource, "portal": token}


@pytest.fixture
def clients(world):
    _, key = api_key_create(tenant=world["tenant"], name="fuzz", is_staff=True)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    org = Client(HTTP_AUTHORIZATION=f"Bearer {organisation_key_create(name='fuzz')[1]}")
    staff = Client()
    staff.force_login(get_user_model().objects.create_user("fuzz-op", is_staff=True))
    portal = Client()
    assert portal.get(reverse("dashboard:portal", args=[world["portal"]])).status_code == 302
    return {"api": api, "org": org, "staff": staff, "portal": portal}


def valid_path_values(route: Route, by_resource: dict) -> dict[str, str]:
    values = {}
    for name in route.path_params:
        resource = route.template.split("{" + name + "}")[0].rstrip("/").rsplit("/", 1)[-1]
        values[name] = str(by_resource[resource])
    return values


def _places(route: Route, fields: dict) -> dict[str, list[str]]:
    places = {"path": list(route.path_params), "query": [*fields["query"], "undeclared"]}
    places |= {kind: list(fields[kind]) for kind in ("header", "body")}
    return {place: names for place, names in places.items() if names}


@st.composite
def attacks(draw, route: Route, fields: dict) -> dict:
    """Hostile values in one place (path, query, headers or body): in every parameter there at
    once, or in a few. One place at a time, so that a refused path does not hide the body."""
    places = _places(route, fields)
    place = draw(st.sampled_from(sorted(places)))
    names = places[place]
    chosen = draw(
        st.one_of(st.just(names), st.lists(st.sampled_from(names), min_size=1, unique=True))
    )
    values = {"header": hostile_header, "body": hostile_json if route.is_api else hostile_text}
    attack: dict = {"path": {}, "query": {}, "header": {}, "body": {}, "valid_body": True}
    attack[place] = {name: draw(values.get(place, hostile_text)) for name in chosen}
    attack["valid_body"] = draw(st.booleans())
    return attack


# Sent every time, whatever hypothesis draws: each kind of character in every parameter of
# every place, so that no parameter goes untried.
EVERY_TIME = {"NUL": "x\x00", "lone surrogate": "x\ud800", "control character": "x\x1b\x7f"}


def fixed_attacks(route: Route, fields: dict) -> list[dict]:
    attacks = []
    for place, names in _places(route, fields).items():
        for kind, text in EVERY_TIME.items():
            if place == "header" and kind == "lone surrogate":
                continue  # headers are latin-1: there is no way to send one
            shapes = [text]
            if place == "body" and route.is_api:
                shapes += [[text], {text: text}]  # in list items and object keys too
            for value in shapes:
                attack: dict = {"path": {}, "query": {}, "header": {}, "body": {}}
                attack[place] = dict.fromkeys(names, value)
                attacks.append(attack | {"valid_body": True})
    return attacks


def send(client: Client, route: Route, method: str, attack: dict, world: dict):
    path = route.path({**valid_path_values(route, world["by_resource"]), **attack["path"]})
    if attack["query"]:
        path += "?" + form_body(attack["query"])
    headers = {f"HTTP_{n.upper().replace('-', '_')}": v for n, v in attack["header"].items()}
    if method == "get":
        return client.get(path, **headers)
    if route.is_api:
        body = {**(VALID_BODY if attack["valid_body"] else {}), **attack["body"]}
        return getattr(client, method)(path, json.dumps(body), "application/json", **headers)
    body = form_body(attack["body"])
    return client.post(path, body, "application/x-www-form-urlencoded", **headers)


@pytest.mark.parametrize(("route", "method", "who", "fields"), TARGETS)
def test_hostile_characters_never_cause_a_server_error(world, clients, route, method, who, fields):
    client = clients[who]

    @hypothesis_settings(
        max_examples=3,  # drawn ones, besides the fixed attacks
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(attack=attacks(route, fields))
    def check(attack: dict) -> None:
        # Each request in a savepoint rolled back after it, and the session cookies put back: a
        # sign-out, a deletion or a failed query does not change what the next example meets.
        cookies = copy.deepcopy(client.cookies)
        with transaction.atomic():
            response = send(client, route, method, attack, world)
            transaction.set_rollback(True)
        client.cookies = cookies
        assert response.status_code < 500, (response.status_code, response.content[:300])
        if route.is_api and response.status_code >= 400:
            assert response["Content-Type"].startswith("application/json"), response.content[:200]
            assert {"code", "detail"} <= set(response.json())

    for attack in fixed_attacks(route, fields):
        check = example(attack=attack)(check)
    check()
