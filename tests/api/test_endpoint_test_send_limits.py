"""Each tenant has a limit of pending test sends, and no endpoint may point at Hookline itself.

No worker runs in this module unless a test starts its own: pending test sends stay pending."""

from __future__ import annotations

import threading
import time

import pytest
from django.contrib.auth import get_user_model

from deliveries.batch import deliver_due_batch
from deliveries.models import Delivery
from inbox.models import Inbox, InboxRequest
from subscriptions.models import Endpoint
from subscriptions.services import api_key_create
from tests.api.conftest import assert_error_body, client_for
from tests.api.sending import http_post, send_test
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory

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


# --- At most so many pending test sends per tenant ------------------------------------------------


def test_a_test_send_past_the_tenants_limit_is_a_429_with_retry_after(api, tenant, settings):
    # No worker runs: the three accepted test sends stay pending.
    settings.WEBHOOKS_TEST_WAIT_SECONDS = 0.0
    endpoint = EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/slow")
    other = TenantFactory(slug="other")
    other_endpoint = EndpointFactory(tenant=other, url="http://127.0.0.1:9/other")
    other_api = client_for(api_key_create(tenant=other, name="b")[1])

    accepted = [send_test(api, endpoint).status_code for _ in range(3)]
    refused = send_test(api, endpoint)

    assert accepted == [202, 202, 202]
    assert refused.status_code == 429
    assert_error_body(refused, "throttled")
    assert "3 test events are already waiting to be sent" in refused.json()["detail"]
    assert int(refused["Retry-After"]) >= 1
    assert Delivery.objects.filter(endpoint=endpoint).count() == 3
    assert send_test(other_api, other_endpoint).status_code == 202
    # Once one is sent, a place is free again.
    Delivery.objects.filter(id=Delivery.objects.filter(endpoint=endpoint).first().id).update(
        status=Delivery.Status.SUCCEEDED
    )
    assert send_test(api, endpoint).status_code == 202


def test_parallel_test_sends_past_the_limit_take_no_more_than_the_limit(
    key, tenant, live_server, settings
):
    settings.WEBHOOKS_TEST_WAIT_SECONDS = 0.0
    endpoint = EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/slow")
    results = []

    def post() -> None:
        results.append(http_post(f"{live_server.url}/api/v1/endpoints/{endpoint.id}/test/", key))

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(status for status, _, _ in results) == [202] * 3 + [429] * 3
    assert Delivery.objects.filter(endpoint=endpoint).count() == 3


def test_the_dashboard_says_when_the_tenants_test_sends_are_all_taken(client, tenant, settings):
    settings.WEBHOOKS_TEST_WAIT_SECONDS = 0.0
    user = get_user_model().objects.create_user("ana", password="pw-123456789")
    tenant.members.add(user)
    client.force_login(user)
    endpoint = EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/slow")

    pages = [
        client.post(f"/dashboard/endpoints/{endpoint.id}/test/", follow=True) for _ in range(4)
    ]

    for page in pages[:3]:
        assert "Test event queued: a worker is sending it." in page.content.decode()
    assert "Test event not sent: 3 test events are already waiting" in pages[3].content.decode()
    assert Delivery.objects.filter(endpoint=endpoint).count() == 3


# --- No endpoint may point at Hookline itself, but for its inbox ---------------------------------


def test_an_endpoint_on_hooklines_own_api_is_refused_at_registration(api, key, live_server):
    target = f"{live_server.url}/api/v1/endpoints/"

    response = api.post(
        "/api/v1/endpoints/",
        {"url": target, "headers": {"Authorization": f"Bearer {key}"}},
        format="json",
    )

    assert response.status_code == 400
    body = assert_error_body(response, "invalid")
    assert "URL points at Hookline itself" in body["fields"]["url"][0]
    assert not Endpoint.objects.exists()


def test_the_test_inbox_on_hooklines_own_host_is_accepted_and_receives(
    api, tenant, live_server, settings
):
    inbox = Inbox.objects.create(tenant=tenant)

    response = api.post(
        "/api/v1/endpoints/", {"url": f"{live_server.url}/inbox/{inbox.token}/"}, format="json"
    )
    assert response.status_code == 201, response.content
    send_test(api, Endpoint.objects.get(id=response.json()["id"]))
    deliver_due_batch(limit=10)

    [received] = InboxRequest.objects.filter(inbox=inbox)
    assert received.signature_valid is True


def test_a_stored_endpoint_on_hooklines_own_api_is_blocked_when_sent_and_never_recurses(
    key, tenant, live_server, start_worker, settings
):
    # Stored as an older version let it be: the tenant's own key in a header, aimed at the API
    # that sends a test event to this very endpoint.
    endpoint = EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/placeholder")
    endpoint.headers = {"Authorization": f"Bearer {key}"}
    endpoint.url = f"{live_server.url}/api/v1/endpoints/{endpoint.id}/test/"
    endpoint.save(update_fields=["headers", "url"])
    start_worker(ALLOWED_HOSTS="localhost,testserver")  # the worker knows the web's hosts too
    settings.WEBHOOKS_TEST_WAIT_SECONDS = 10.0

    response = send_test(client_for(key), endpoint)

    assert response.status_code == 200, response.content
    attempt = response.json()["attempt"]
    assert attempt["error_kind"] == "blocked"
    assert "one of Hookline's own ALLOWED_HOSTS" in attempt["error_message"]
    time.sleep(2)  # a recursion would have made more test deliveries by now
    assert Delivery.objects.count() == 1
