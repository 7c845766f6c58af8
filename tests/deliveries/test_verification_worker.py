"""Ownership verification with a real worker process on the real broker: a new endpoint gets its
challenge and nothing else until it echoes it, while the worker goes on delivering to the others;
once the echo comes, the events held for it arrive, each once, each key in emission order."""

from __future__ import annotations

import json
import time

import pytest

from subscriptions.models import VERIFICATION_EVENT_TYPE, Endpoint
from subscriptions.services import endpoint_create
from subscriptions.verification import endpoint_verification_retry
from tests.deliveries.test_verification import echo
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from tests.worker import wait_until
from webhooks import send_event

pytestmark = [pytest.mark.services]


def test_an_unverified_endpoint_waits_for_its_echo_then_gets_every_held_event_in_order(
    start_worker, receiver, settings
):
    settings.WEBHOOKS_VERIFY_ENDPOINTS = True
    EventTypeFactory(name="order.updated")
    tenant = TenantFactory()
    trusted = EndpointFactory(tenant=tenant, url=receiver.url("/trusted"))
    endpoint = endpoint_create(tenant=tenant, url=receiver.url("/new"))
    # No echo yet: the receiver answers {"ok": true}, a failed attempt, retried.
    start_worker(WEBHOOKS_RETRY_SCHEDULE="1,1,1,1,1,1")
    sent = [
        send_event(tenant, "order.updated", {"seq": n}, ordering_key=f"ord_{n % 3}").public_id
        for n in range(30)
    ]

    receiver.wait_for(30, "/trusted")
    receiver.wait_for(2, "/new")  # the challenge, and its first retry
    types = {json.loads(r.body)["type"] for r in receiver.requests("/new")}
    assert types == {VERIFICATION_EVENT_TYPE}
    assert Endpoint.objects.get(id=endpoint.id).verified_at is None

    receiver.reply_with("/new", echo)
    endpoint_verification_retry(endpoint=endpoint)  # the fixed receiver asks for a new one

    wait_until(
        lambda: Endpoint.objects.get(id=endpoint.id).verified_at is not None,
        20,
        "the endpoint was not verified",
    )

    def events() -> list:
        return [r for r in receiver.requests("/new") if b'"order.updated"' in r.body]

    wait_until(lambda: len(events()) >= 30, 30, "the held events did not all arrive")
    time.sleep(0.5)  # room for a duplicate to show
    ids = [r.headers["webhook-id"] for r in events()]
    assert sorted(ids) == sorted(sent)  # each held event once
    for key in range(3):
        of_key = [sent[n] for n in range(30) if n % 3 == key]
        assert [i for i in ids if i in of_key] == of_key
    assert len(receiver.requests("/trusted")) == 30
    assert trusted.deliveries.count() == 30
