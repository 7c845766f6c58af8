"""Property-based run of the whole REST API against its own OpenAPI schema (schemathesis), with
every check: what the schema allows the server accepts, what it forbids the server refuses, and
every response is as documented."""

from __future__ import annotations

import os
import re

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import override_settings
from hypothesis import HealthCheck, settings
from schemathesis import checks

from config.wsgi import application
from deliveries.models import Delivery
from subscriptions import throttling
from subscriptions.services import api_key_create, organisation_key_create
from subscriptions.throttling import ApiKeyRateThrottle
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event
from webhooks.batches import MAX_BATCH_EVENTS

# Schema-valid requests that only the data can refuse, with why no schema can say so. A 400
# whose message matches is not counted against "valid data is accepted"; every other check still
# runs on it.
JUDGED_BY_DATA = [
    ("POST", "/api/v1/events/", "Unknown event type", "the catalog is rows, not schema"),
    ("POST", "/api/v1/events/", "does not match the schema of", "per-type schemas are rows"),
    ("POST", "/api/v1/endpoints/{id}/test/", "Unknown event type", "the catalog is rows"),
    ("POST", "/api/v1/endpoints/{id}/test/", "does not match the schema of", "schemas are rows"),
    ("POST", "/api/v1/events/", "cannot contain the NUL", "jsonb refuses it at any depth"),
    ("POST", "/api/v1/endpoints/{id}/test/", "cannot contain the NUL", "jsonb refuses it anywhere"),
    ("POST", "/api/v1/endpoints/", "URL is not allowed", "DNS decides where a host points"),
    ("PUT", "/api/v1/endpoints/{id}/", "URL is not allowed", "DNS decides where a host points"),
    ("PATCH", "/api/v1/endpoints/{id}/", "URL is not allowed", "DNS decides where a host points"),
    ("POST", "/api/v1/endpoints/", "Unknown or archived event type", "the catalog is rows"),
    ("PUT", "/api/v1/endpoints/{id}/", "Unknown or archived event type", "the catalog is rows"),
    ("PATCH", "/api/v1/endpoints/{id}/", "Unknown or archived event type", "the catalog is rows"),
    ("POST", "/api/v1/endpoints/", "URL points at Hookline itself", "ALLOWED_HOSTS is settings"),
    (
        "PUT",
        "/api/v1/endpoints/{id}/",
        "URL points at Hookline itself",
        "ALLOWED_HOSTS is settings",
    ),
    ("PATCH", "/api/v1/endpoints/{id}/", "URL points at Hookline", "ALLOWED_HOSTS is settings"),
    ("POST", "/api/v1/endpoints/{id}/recover/", "is in the future", "the clock decides"),
    ("POST", "/api/v1/endpoints/{id}/recover/", "out of range", "time zones move the instant"),
    ("POST", "/api/v1/event-types/", "already exists", "names are unique across rows"),
    (
        "GET",
        "/api/v1/events/",
        "A payload filter is data. and a path",
        "OpenAPI 3.0 (JSON Schema draft 4) has no propertyNames to limit an object's names",
    ),
    ("POST", "/api/v1/tenants/", "already exists", "slugs are unique across rows"),
    ("PUT", "/api/v1/event-types/{name}/", "already exists", "names are unique across rows"),
    ("PATCH", "/api/v1/event-types/{name}/", "already exists", "names are unique across rows"),
]


@pytest.fixture
def in_process_requests():
    """Call the WSGI app inside the test's transaction, as Django's test client does."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


# schemathesis calls the app as "localhost", which the test settings leave out of ALLOWED_HOSTS
# (receivers listen there); here it is the host Hookline answers to.
AS_LOCALHOST = override_settings(ALLOWED_HOSTS=[*django_settings.ALLOWED_HOSTS, "localhost"])

# Generating the schema touches no database, so it is loaded once, when the module is collected.
with AS_LOCALHOST:
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("_as_localhost")]


@pytest.fixture
def _as_localhost():
    with AS_LOCALHOST:
        yield


@pytest.fixture
def api_key(monkeypatch, in_process_requests):
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "100000/s"})
    # The "invalid credentials are refused" check sends many bad keys from one address.
    monkeypatch.setattr(throttling, "API_KEY_FAILURE_LIMIT", 10**9)
    # No worker runs: "send test event" answers 202 at once rather than wait for an attempt.
    monkeypatch.setattr(django_settings, "WEBHOOKS_TEST_WAIT_SECONDS", 0.0)
    tenant = TenantFactory()
    EventTypeFactory(name="order.paid")
    # A closed local port: "send test event" fails fast instead of reaching anything.
    endpoint = EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/hook")
    event = send_event(tenant, "order.paid", {"order_id": "o1"})
    Delivery.objects.filter(event=event).update(status=Delivery.Status.FAILED)
    assert endpoint.pk
    _, key = api_key_create(tenant=tenant, name="fuzz", is_staff=True)
    return key


@pytest.fixture
def organisation_key(api_key):
    return organisation_key_create(name="fuzz")[1]


def judged_by_data(case, response) -> bool:
    if response.status_code != 400:
        return False
    operation = (case.method.upper(), case.path)
    return any(
        (method, path) == operation and re.search(re.escape(message), response.text)
        for method, path, message, _why in JUDGED_BY_DATA
    )


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("HOOKLINE_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api_keeps_to_its_schema_under_every_check(case, api_key, organisation_key):
    # The tenants' paths are the organisation key's; the rest a tenant's (staff) key's.
    key = organisation_key if case.path.startswith("/api/v1/tenants/") else api_key
    headers = {"Authorization": f"Bearer {key}"}
    response = case.call(headers=headers)
    excluded = [checks.positive_data_acceptance] if judged_by_data(case, response) else []
    if unknown_query_never_sent(case) or too_many_events(case, response):
        excluded.append(checks.negative_data_rejection)
    case.validate_response(response, headers=headers, excluded_checks=excluded)


def too_many_events(case, response) -> bool:
    """Whether a batch over its `maxItems` was refused with the 413 the API documents for it,
    a rejection that schemathesis does not count as one."""
    events = case.body.get("events") if isinstance(case.body, dict) else None
    too_many = isinstance(events, list) and len(events) > MAX_BATCH_EVENTS
    return too_many and response.status_code == 413


def unknown_query_never_sent(case) -> bool:
    """Whether the only unknown query parameters generated hold no value, so none is in the URL.

    A generated `{"": []}` makes the case "schema-violating" but encodes to nothing: the server
    gets a valid request and rightly answers it.
    """
    known = {parameter.name for parameter in case.operation.query}
    unknown = set(case.query or {}) - known
    return bool(unknown) and all(case.query[name] in ([], None) for name in unknown)
