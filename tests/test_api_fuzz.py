"""Property-based run of the whole REST API against its own OpenAPI schema (schemathesis)."""

from __future__ import annotations

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
from subscriptions.services import api_key_create
from subscriptions.throttling import ApiKeyRateThrottle
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event


@pytest.fixture
def in_process_requests():
    """Call the WSGI app inside the test's transaction, as Django's test client does."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


# No server error, and every response as documented. (Schema-valid input that business rules
# refuse, such as a URL that does not resolve, is a 400 by design, so positive-data acceptance
# is not among the checks.)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]

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
    # No worker runs: "send test event" answers 202 at once rather than wait for an attempt.
    monkeypatch.setattr(django_settings, "WEBHOOKS_TEST_WAIT_SECONDS", 0.0)
    tenant = TenantFactory()
    EventTypeFactory(name="order.paid")
    # A closed local port: "send test event" fails fast instead of reaching anything.
    endpoint = EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/hook")
    event = send_event(tenant, "order.paid", {"order_id": "o1"})
    Delivery.objects.filter(event=event).update(status=Delivery.Status.FAILED)
    assert endpoint.pk
    _, key = api_key_create(tenant=tenant, name="fuzz")
    return key


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api_gives_no_server_error_and_keeps_to_its_schema(case, api_key):
    case.call_and_validate(headers={"Authorization": f"Bearer {api_key}"}, checks=CHECKS)
