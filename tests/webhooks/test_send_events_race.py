"""Concurrent batches sharing idempotency keys: one event per key, every item answered.

On PostgreSQL the batches overlap inside the database (ON CONFLICT DO NOTHING waits for the
other transaction); on SQLite they queue for the write lock."""

from __future__ import annotations

from collections import Counter

import pytest

from deliveries.models import Delivery
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from tests.webhooks.test_idempotency_race import run_at_once
from webhooks import send_events
from webhooks.batches import ItemStatus
from webhooks.models import Event

pytestmark = [pytest.mark.django_db(transaction=True)]

# As many as a batch holds: with crossing orders, batches this long used to deadlock.
KEYS = [f"key-{n}" for n in range(500)]


@pytest.fixture
def tenant():
    EventTypeFactory(name="order.paid")
    tenant = TenantFactory(slug="acme")
    EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/a")
    return tenant


def batch(tenant, keys: list[str]):
    items = [("order.paid", {"key": key}, {"idempotency_key": key}) for key in keys]
    return lambda: {r.event_id: r.status for r in send_events(tenant, items)}


def assert_one_event_per_key(answers: list[dict]) -> None:
    assert Event.objects.count() == len(KEYS)
    assert Delivery.objects.count() == len(KEYS)
    stored = set(Event.objects.values_list("public_id", flat=True))
    for answer in answers:
        assert set(answer) == stored  # every item names the one event of its key
    created = Counter(
        event_id for answer in answers for event_id, status in answer.items()
        if status == ItemStatus.CREATED
    )  # fmt: skip
    assert set(created.values()) == {1}  # each created by one batch, a duplicate in the others
    assert set(created) == stored


def test_concurrent_batches_with_the_same_keys_store_each_key_once(tenant):
    answers = run_at_once([batch(tenant, KEYS) for _ in range(4)])

    assert len(answers) == 4
    assert_one_event_per_key(answers)


@pytest.mark.parametrize("attempt", range(5))  # a race: several tries
def test_concurrent_batches_with_keys_in_crossing_orders_all_succeed(tenant, attempt):
    answers = run_at_once([batch(tenant, KEYS), batch(tenant, KEYS[::-1])])

    assert len(answers) == 2
    assert_one_event_per_key(answers)
