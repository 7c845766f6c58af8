"""The test inbox answers the ownership challenge of an endpoint aimed at it, so that an endpoint
made for the inbox verifies itself when verification is on."""

from __future__ import annotations

import json
import time

import pytest

from deliveries.batch import deliver_due_batch
from deliveries.models import Delivery
from inbox.models import Inbox, InboxRequest
from subscriptions.models import Endpoint
from subscriptions.services import endpoint_create
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event
from webhooks.signing import secret_key, signature_header

CHALLENGE_BODY = json.dumps(
    {"type": "hookline.verification", "timestamp": "…", "data": {"challenge": "c-123"}}
).encode()


def signed(secret: str, body: bytes) -> dict[str, str]:
    now = int(time.time())
    return {
        "HTTP_WEBHOOK_ID": "msg_1",
        "HTTP_WEBHOOK_TIMESTAMP": str(now),
        "HTTP_WEBHOOK_SIGNATURE": signature_header([secret_key(secret)], "msg_1", now, body),
    }


@pytest.fixture
def failing_inbox(db):
    return Inbox.objects.create(tenant=TenantFactory(), respond_status=503)


@pytest.mark.django_db
def test_a_signed_challenge_is_echoed_whatever_the_inbox_answers_otherwise(client, failing_inbox):
    endpoint = EndpointFactory(
        tenant=failing_inbox.tenant, url=f"http://127.0.0.1:8000/inbox/{failing_inbox.token}/"
    )

    response = client.post(
        f"/inbox/{failing_inbox.token}/",
        CHALLENGE_BODY,
        content_type="application/json",
        **signed(endpoint.secret, CHALLENGE_BODY),
    )

    assert response.status_code == 200
    assert response.json() == {"challenge": "c-123"}
    stored = InboxRequest.objects.get()
    assert (stored.signature_valid, stored.response_status) == (True, 200)


@pytest.mark.django_db
def test_a_challenge_not_signed_by_an_endpoint_of_the_inbox_is_not_echoed(client, failing_inbox):
    EndpointFactory(
        tenant=failing_inbox.tenant, url=f"http://127.0.0.1:8000/inbox/{failing_inbox.token}/"
    )
    stranger = EndpointFactory(url="http://127.0.0.1:8000/elsewhere/")

    forged = client.post(
        f"/inbox/{failing_inbox.token}/",
        CHALLENGE_BODY,
        content_type="application/json",
        **signed(stranger.secret, CHALLENGE_BODY),
    )
    unsigned = client.post(
        f"/inbox/{failing_inbox.token}/", CHALLENGE_BODY, content_type="application/json"
    )

    assert (forged.status_code, unsigned.status_code) == (503, 503)
    assert b"c-123" not in forged.content + unsigned.content


@pytest.mark.django_db(transaction=True)
def test_an_endpoint_made_for_the_inbox_verifies_itself(live_server, settings):
    settings.WEBHOOKS_VERIFY_ENDPOINTS = True
    EventTypeFactory(name="order.paid")
    inbox = Inbox.objects.create(tenant=TenantFactory())
    endpoint = endpoint_create(tenant=inbox.tenant, url=f"{live_server.url}/inbox/{inbox.token}/")
    assert endpoint.verified_at is None
    event = send_event(inbox.tenant, "order.paid", {"order_id": "o-1"})

    for _ in range(4):
        deliver_due_batch(limit=10)

    assert Endpoint.objects.get(id=endpoint.id).verified_at is not None
    assert Delivery.objects.get(event=event).status == Delivery.Status.SUCCEEDED
    kinds = [json.loads(r.body)["type"] for r in InboxRequest.objects.order_by("id")]
    assert kinds == ["hookline.verification", "order.paid"]
