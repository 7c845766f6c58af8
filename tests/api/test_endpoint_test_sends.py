"""Test sends go through a real Celery worker, and the web waits for them a bounded while only."""

from __future__ import annotations

import json
import threading

import pytest
from standardwebhooks import Webhook

from deliveries.models import Attempt, Delivery
from subscriptions.models import Endpoint
from subscriptions.services import api_key_create
from tests.api.conftest import client_for
from tests.api.sending import http_post, send_test, wait_for
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from tests.receiver import HANG

pytestmark = pytest.mark.services


@pytest.fixture
def tenant(transactional_db):
    EventTypeFactory(name="hookline.test")
    return TenantFactory(slug="acme")


@pytest.fixture
def key(tenant) -> str:
    return api_key_create(tenant=tenant, name="a")[1]


@pytest.fixture
def api(key):
    return client_for(key)


# --- A worker sends them; the web waits a bounded while ------------------------------------------


def test_test_event_is_sent_by_a_worker_and_its_attempt_returned(api, tenant, receiver, worker):
    endpoint = EndpointFactory(tenant=tenant, url=receiver.url("/test"))

    response = send_test(api, endpoint)

    assert response.status_code == 200, response.content
    body = response.json()
    delivery = Delivery.objects.get(id=body["delivery_id"])
    assert body["url"] == f"/api/v1/deliveries/{delivery.id}/"
    assert delivery.endpoint == endpoint
    assert delivery.status == Delivery.Status.SUCCEEDED
    assert body["attempt"]["response_status"] == 200
    assert body["attempt"]["trigger"] == "test"
    [request] = receiver.requests("/test")
    assert json.loads(request.body)["type"] == "hookline.test"
    assert request.headers["webhook-id"] == delivery.event.public_id
    Webhook(endpoint.secret).verify(request.body, request.headers)


def test_test_event_with_a_chosen_type_and_payload(api, tenant, receiver, worker):
    EventTypeFactory(name="order.paid")
    endpoint = EndpointFactory(tenant=tenant, url=receiver.url("/test"))

    response = send_test(api, endpoint, {"event_type": "order.paid", "payload": {"id": "o-t"}})

    assert response.status_code == 200
    [request] = receiver.requests("/test")
    assert json.loads(request.body)["data"] == {"id": "o-t"}


def test_test_event_reports_a_failing_endpoint(api, tenant, receiver, worker):
    endpoint = EndpointFactory(tenant=tenant, url=receiver.url("/down"))
    receiver.script("/down", [503])

    response = send_test(api, endpoint)

    assert response.status_code == 200
    assert response.json()["attempt"]["response_status"] == 503
    assert response.json()["attempt"]["error_kind"] == "http_status"


def test_six_parallel_test_sends_to_a_hanging_receiver_hold_no_request_past_the_wait(
    key, tenant, receiver, worker, live_server, settings
):
    # The web's own timeout is longer than its wait: sent in the web request, as before, each
    # would take 5 s. The worker gives up after its WEBHOOKS_TIMEOUT (2 s in the test settings).
    settings.WEBHOOKS_TIMEOUT = 5.0
    settings.WEBHOOKS_TEST_WAIT_SECONDS = 1.0
    settings.WEBHOOKS_TEST_SENDS_PER_TENANT = 6
    receiver.hang_seconds = 6.0
    endpoints = [EndpointFactory(tenant=tenant, url=receiver.url(f"/hang{n}")) for n in range(6)]
    for n in range(6):
        receiver.script(f"/hang{n}", [HANG])
    results = []

    def post(endpoint: Endpoint) -> None:
        results.append(http_post(f"{live_server.url}/api/v1/endpoints/{endpoint.id}/test/", key))

    threads = [threading.Thread(target=post, args=(endpoint,)) for endpoint in endpoints]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(status for status, _, _ in results) == [202] * 6, results
    assert max(took for _, _, took in results) < 1.0 + 1.5, results
    for _, body, _ in results:
        assert body["attempt"] is None
        assert body["url"] == f"/api/v1/deliveries/{body['delivery_id']}/"
    # The worker made every attempt, and gave up on each after its own timeout.
    attempts = wait_for(lambda: Attempt.objects.count() == 6 and Attempt.objects.all())
    assert {attempt.error_kind for attempt in attempts} == {"timeout"}
    assert {attempt.trigger for attempt in attempts} == {"test"}
    assert len(receiver.requests()) == 6
