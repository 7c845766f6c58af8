"""The worker's batch, run in-process against a real receiver (no broker needed)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Max
from django.utils import timezone

from deliveries.batch import deliver_due_batch
from deliveries.models import Delivery
from deliveries.services import deliveries_claim_due
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tenant():
    EventTypeFactory(name="order.paid")
    return TenantFactory()


def test_batch_delivers_due_deliveries_and_records_attempts(tenant, receiver):
    EndpointFactory(tenant=tenant, url=receiver.url("/a"))
    events = [send_event(tenant, "order.paid", {"n": n}) for n in range(3)]

    assert deliver_due_batch(limit=10) == 3

    assert len(receiver.requests("/a")) == 3
    statuses = Delivery.objects.filter(event__in=events).values_list("status", flat=True)
    assert set(statuses) == {Delivery.Status.SUCCEEDED}
    assert deliver_due_batch(limit=10) == 0


def test_failed_attempt_schedules_the_next_one_per_the_retry_schedule(tenant, receiver, settings):
    settings.WEBHOOKS_RETRY_SCHEDULE = (60.0,)
    EndpointFactory(tenant=tenant, url=receiver.url("/down"))
    receiver.script("/down", [500])
    event = send_event(tenant, "order.paid", {})

    before = timezone.now()
    deliver_due_batch(limit=10)

    delivery = Delivery.objects.get(event=event)
    assert delivery.status == Delivery.Status.PENDING
    assert delivery.attempt_count == 1
    assert delivery.last_response_status == 500
    assert delivery.leased_by == ""
    assert before + timedelta(seconds=48) <= delivery.next_attempt_at
    assert delivery.next_attempt_at <= timezone.now() + timedelta(seconds=72)
    assert deliver_due_batch(limit=10) == 0  # not due yet


def test_last_failed_attempt_moves_the_delivery_to_failed(tenant, receiver, settings):
    settings.WEBHOOKS_RETRY_SCHEDULE = ()
    EndpointFactory(tenant=tenant, url=receiver.url("/down"))
    receiver.script("/down", [503])
    event = send_event(tenant, "order.paid", {})

    deliver_due_batch(limit=10)

    delivery = Delivery.objects.get(event=event)
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.finished_at is not None
    assert delivery.next_attempt_at is None
    assert delivery.attempts.get().error_kind == "http_status"


def test_gone_endpoint_is_disabled(tenant, receiver):
    endpoint = EndpointFactory(tenant=tenant, url=receiver.url("/gone"))
    receiver.script("/gone", [410])
    send_event(tenant, "order.paid", {})

    deliver_due_batch(limit=10)

    endpoint.refresh_from_db()
    assert not endpoint.is_active
    assert "410" in endpoint.disabled_reason


def test_a_claimed_delivery_is_not_claimed_again_until_its_lease_expires(tenant, receiver):
    EndpointFactory(tenant=tenant, url=receiver.url("/a"))
    send_event(tenant, "order.paid", {})

    first = deliveries_claim_due(limit=10)
    assert len(first.deliveries) == 1
    assert deliveries_claim_due(limit=10).deliveries == []

    Delivery.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert len(deliveries_claim_due(limit=10).deliveries) == 1


def test_full_batch_asks_for_another_worker_before_attempting(tenant, receiver, settings):
    settings.WEBHOOKS_FAIR_CLAIMS = False  # whole batches: the second claim is short of full
    EndpointFactory(tenant=tenant, url=receiver.url("/a"))
    for n in range(3):
        send_event(tenant, "order.paid", {"n": n})
    woken: list[int] = []

    deliver_due_batch(limit=2, on_full_batch=lambda: woken.append(len(receiver.requests())))
    deliver_due_batch(limit=2, on_full_batch=lambda: woken.append(-1))

    assert woken == [0]
    assert len(receiver.requests("/a")) == 3


def test_deliveries_to_a_disabled_endpoint_wait(tenant, receiver):
    endpoint = EndpointFactory(tenant=tenant, url=receiver.url("/a"))
    send_event(tenant, "order.paid", {})
    endpoint.is_active = False
    endpoint.save(update_fields=["is_active"])

    assert deliver_due_batch(limit=10) == 0
    assert Delivery.objects.get().status == Delivery.Status.PENDING


def test_a_batch_longer_than_its_lease_records_as_it_goes_and_renews_the_lease(
    tenant, receiver, settings
):
    """30 sends of 0.2 s under a 4 s lease (timeout 2 s): the batch renews its lease and sends
    them all, and what it sent shows as delivered while the batch is still going."""
    settings.WEBHOOKS_LEASE_SECONDS = 4.0
    EndpointFactory(tenant=tenant, url=receiver.url("/slow"))
    receiver.delay = 0.2
    for n in range(30):
        send_event(tenant, "order.paid", {"n": n})
    claimed_at = timezone.now()

    def batch() -> None:
        try:
            deliver_due_batch(limit=50)
        finally:
            connection.close()

    sender = threading.Thread(target=batch)
    sender.start()
    delivered_midway, lease_ends = set(), []
    while sender.is_alive():
        pending = Delivery.objects.filter(status=Delivery.Status.PENDING)
        delivered_midway.add(30 - pending.count())
        lease_ends.append(pending.aggregate(end=Max("lease_expires_at"))["end"])
        time.sleep(0.1)
    sender.join()

    assert len(receiver.requests("/slow")) == 30  # one claim, all sent
    assert Delivery.objects.filter(status=Delivery.Status.SUCCEEDED).count() == 30
    assert any(0 < n < 30 for n in delivered_midway)
    assert max(end for end in lease_ends if end) > claimed_at + timedelta(seconds=5)
