"""Concurrent `send_event` calls with the same idempotency key, on real PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pytest
from django.db import connection

from deliveries.models import Delivery
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event
from webhooks.models import Event

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def tenant():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    EventTypeFactory(name="order.paid")
    tenant = TenantFactory(slug="acme")
    EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/a")
    EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/b")
    return tenant


def run_at_once(calls: list[Callable[[], int]]) -> list[int]:
    """Run each call in its own thread, all released together; returns their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list[int | None] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index: int, call: Callable[[], int]) -> None:
        try:
            connection.ensure_connection()  # connect before the barrier, so the calls overlap
            barrier.wait(timeout=10)
            results[index] = call()
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    return [result for result in results if result is not None]


def send(tenant, key: str, n: int) -> Callable[[], int]:
    return lambda: send_event(tenant, "order.paid", {"n": n}, idempotency_key=key).id


def test_concurrent_sends_with_one_key_store_one_event_and_one_delivery_per_endpoint(tenant):
    ids = run_at_once([send(tenant, "same", n) for n in range(8)])

    assert len(ids) == 8
    event = Event.objects.get()
    assert set(ids) == {event.id}
    assert event.idempotency_key == "same"
    per_endpoint = Counter(Delivery.objects.values_list("endpoint__url", flat=True))
    assert per_endpoint == {"http://127.0.0.1:9/a": 1, "http://127.0.0.1:9/b": 1}
    assert set(Delivery.objects.values_list("event_id", flat=True)) == {event.id}


def test_concurrent_sends_with_three_interleaved_keys_store_three_events(tenant):
    keys = [f"key-{n % 3}" for n in range(9)]

    ids = run_at_once([send(tenant, key, n) for n, key in enumerate(keys)])

    assert len(ids) == 9
    by_key: dict[str, set[int]] = {}
    for key, event_id in zip(keys, ids, strict=True):
        by_key.setdefault(key, set()).add(event_id)
    assert all(len(event_ids) == 1 for event_ids in by_key.values())
    events = dict(Event.objects.values_list("idempotency_key", "id"))
    assert events == {key: event_ids.pop() for key, event_ids in by_key.items()}
    assert Delivery.objects.count() == 6
    assert Counter(Delivery.objects.values_list("event_id", flat=True)) == {
        event_id: 2 for event_id in events.values()
    }
