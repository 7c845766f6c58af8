"""Concurrent `send_event` calls with the same idempotency key.

Both forms of the event insert (deliveries.bulk) are raced: PostgreSQL's ON CONFLICT DO NOTHING,
and on SQLite the ORM's insert that the unique constraint refuses. SQLite runs one writer at a time,
so there the calls queue for the write lock instead of overlapping inside the database."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pytest
from django.db import connection
from rest_framework.test import APIClient

from deliveries.models import Delivery
from subscriptions.services import api_key_create
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event
from webhooks.models import Event

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def tenant():
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


@pytest.mark.pgbouncer
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


# --- The API: concurrent POSTs reusing one key with different payloads -------------------------

ROUNDS = 5
CALLS_PER_ROUND = 8


def post_event(key: str, idempotency_key: str, payload: dict) -> Callable[[], tuple]:
    def call() -> tuple:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        response = client.post(
            "/api/v1/events/",
            {"event_type": "order.paid", "payload": payload, "idempotency_key": idempotency_key},
            format="json",
        )
        replayed = response.get("Idempotent-Replayed") == "true"
        return response.status_code, replayed, payload, response.json()

    return call


def test_concurrent_posts_with_one_key_and_different_payloads_get_one_202_and_409s(tenant):
    for round_number in range(ROUNDS):
        idempotency_key = f"race-{round_number}"
        _, key = api_key_create(tenant=tenant, name=f"round {round_number}")
        # Two calls in each pair send the same payload: one may be a genuine retry of another.
        payloads = [{"n": n // 2, "round": round_number} for n in range(CALLS_PER_ROUND)]

        answers = run_at_once([post_event(key, idempotency_key, p) for p in payloads])

        assert len(answers) == CALLS_PER_ROUND
        event = Event.objects.get(idempotency_key=idempotency_key)
        first = [answer for answer in answers if answer[0] == 202 and not answer[1]]
        assert len(first) == 1, [answer[:3] for answer in answers]
        assert first[0][2] == event.payload
        assert first[0][3]["id"] == event.public_id
        for status, _, payload, body in answers:
            if payload == event.payload:
                assert (status, body["id"]) == (202, event.public_id)
            else:
                assert (status, body["code"]) == (409, "conflict"), (payload, event.payload)
        assert Delivery.objects.filter(event=event).count() == 2
    assert Event.objects.count() == ROUNDS


def test_a_replayed_key_with_true_where_the_first_had_1_is_a_conflict(tenant):
    _, key = api_key_create(tenant=tenant, name="bools")
    first = post_event(key, "bool", {"paid": 1})()
    again = post_event(key, "bool", {"paid": 1.0})()
    other = post_event(key, "bool", {"paid": True})()

    assert (first[0], first[1]) == (202, False)
    assert (again[0], again[1]) == (202, True)
    assert other[0] == 409
    assert Event.objects.count() == 1
