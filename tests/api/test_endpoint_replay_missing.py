"""`POST /api/v1/endpoints/{id}/replay-missing/`: the events an endpoint wants but never got (it
was disabled, or added after them) are sent to it, once, and nothing else is."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from standardwebhooks import Webhook

from deliveries.batch import deliver_due_batch
from deliveries.missing import deliveries_create_missing
from deliveries.models import Delivery
from subscriptions.services import endpoint_disable, endpoint_enable
from tests.api.conftest import assert_error_body, db_state
from tests.factories import EndpointFactory, EventTypeFactory
from webhooks import send_event
from webhooks.services import event_send_test

pytestmark = pytest.mark.django_db(transaction=True)


def replay_missing(api, endpoint, since):
    return api.post(
        f"/api/v1/endpoints/{endpoint.id}/replay-missing/", {"since": since.isoformat()},
        format="json",
    )  # fmt: skip


def test_an_endpoint_added_late_receives_the_events_it_missed_signed_with_their_ids(
    api, tenant_a, order_paid, receiver
):
    EventTypeFactory(name="order.refunded")
    start = timezone.now()
    early = [send_event(tenant_a, "order.paid", {"order_id": f"ord_{n}"}) for n in range(3)]
    send_event(tenant_a, "order.refunded", {"order_id": "ord_9"})  # not a type it wants
    late = EndpointFactory(tenant=tenant_a, url=receiver.url("/late"), event_types=[order_paid])

    response = replay_missing(api, late, start)

    assert response.status_code == 202, response.content
    assert response.json() == {"queued": 3, "more": False, "next_since": None}
    assert deliver_due_batch(limit=10) == 3
    got = receiver.wait_for(3, "/late")
    assert sorted(r.headers["webhook-id"] for r in got) == sorted(e.public_id for e in early)
    verifier = Webhook(late.secret)
    for request in got:
        verifier.verify(request.body, request.headers)
    # Asked again, there is nothing missing.
    assert replay_missing(api, late, start).json()["queued"] == 0


def test_a_disabled_endpoint_gets_what_came_while_it_was_off_and_not_what_it_had(
    api, tenant_a, order_paid, receiver
):
    endpoint = EndpointFactory(tenant=tenant_a, url=receiver.url("/hook"))
    start = timezone.now()
    before = send_event(tenant_a, "order.paid", {"order_id": "before"})
    deliver_due_batch(limit=10)
    endpoint_disable(endpoint_ids=[endpoint.id], reason="maintenance")
    while_off = [send_event(tenant_a, "order.paid", {"order_id": f"off_{n}"}) for n in range(2)]
    endpoint_enable(endpoint=endpoint)

    assert replay_missing(api, endpoint, start).json()["queued"] == 2

    deliver_due_batch(limit=10)
    ids = receiver.webhook_ids("/hook")
    assert ids.count(before.public_id) == 1
    assert sorted(ids[1:]) == sorted(e.public_id for e in while_off)


def test_the_endpoints_filter_is_applied_and_hooklines_own_events_are_never_resent(
    api, tenant_a, order_paid
):
    start = timezone.now()
    send_event(tenant_a, "order.paid", {"order_id": "small", "amount": 5})
    big = send_event(tenant_a, "order.paid", {"order_id": "big", "amount": 500})
    EventTypeFactory(name="hookline.test")
    event_send_test(endpoint=EndpointFactory(tenant=tenant_a))
    late = EndpointFactory(tenant=tenant_a)
    late.filter = "data.amount > 100"
    late.save(update_fields=["filter"])

    assert replay_missing(api, late, start).json()["queued"] == 1
    assert list(Delivery.objects.filter(endpoint=late).values_list("event_id", flat=True)) == [
        big.id
    ]


def test_a_large_gap_is_taken_a_limit_at_a_time(tenant_a, order_paid):
    start = timezone.now()
    events = [send_event(tenant_a, "order.paid", {"order_id": f"o{n}"}) for n in range(5)]
    late = EndpointFactory(tenant=tenant_a)

    first = deliveries_create_missing(endpoint=late, since=start, limit=3)
    assert (first.queued, first.more, first.next_since) == (3, True, events[3].created_at)
    second = deliveries_create_missing(endpoint=late, since=first.next_since, limit=3)
    assert (second.queued, second.more) == (2, False)
    assert Delivery.objects.filter(endpoint=late).count() == 5


def test_a_keyed_event_waits_behind_its_keys_pending_delivery(tenant_a, order_paid):
    start = timezone.now()
    first = send_event(tenant_a, "order.paid", {"order_id": "a"}, ordering_key="cust_1")
    second = send_event(tenant_a, "order.paid", {"order_id": "b"}, ordering_key="cust_1")
    late = EndpointFactory(tenant=tenant_a)

    deliveries_create_missing(endpoint=late, since=start)

    made = {d.event_id: d for d in Delivery.objects.filter(endpoint=late)}
    assert not made[first.id].waiting_on_key
    assert made[first.id].next_attempt_at is not None
    assert made[second.id].waiting_on_key
    assert made[second.id].next_attempt_at is None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has one writer at a time")
def test_two_calls_at_once_create_each_delivery_once(tenant_a, order_paid):
    start = timezone.now()
    for n in range(30):
        send_event(tenant_a, "order.paid", {"order_id": f"o{n}"})
    late = EndpointFactory(tenant=tenant_a)
    queued = []

    def call() -> None:
        try:
            queued.append(deliveries_create_missing(endpoint=late, since=start).queued)
        finally:
            connection.close()

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(queued) == [0, 0, 0, 30]
    assert Delivery.objects.filter(endpoint=late).count() == 30


@pytest.mark.parametrize(
    "since",
    ["", "yesterday", "2026-13-01T00:00:00Z", "\x00", "9999-12-31T23:59:59Z", None, 17],
)
def test_a_bad_since_is_refused_and_changes_nothing(api, tenant_a, order_paid, since):
    endpoint = EndpointFactory(tenant=tenant_a)
    send_event(tenant_a, "order.paid", {"order_id": "x"})
    before = db_state()

    response = api.post(
        f"/api/v1/endpoints/{endpoint.id}/replay-missing/", {"since": since}, format="json"
    )

    assert response.status_code == 400
    assert_error_body(response)
    assert db_state() == before


def test_another_tenants_endpoint_is_404_and_gets_nothing(api, tenant_b, order_paid):
    theirs = EndpointFactory(tenant=tenant_b)
    start = timezone.now() - timedelta(minutes=1)
    send_event(tenant_b, "order.paid", {"order_id": "x"})
    Delivery.objects.all().delete()

    assert replay_missing(api, theirs, start).status_code == 404
    assert not Delivery.objects.exists()
