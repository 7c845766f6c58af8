"""Batch emit with real worker processes and a real receiver: every delivery of a batch arrives
once, signed, and events that share an ordering key arrive in the batch's order."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest
import standardwebhooks

from deliveries.models import Delivery
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from tests.receiver import Receiver
from tests.worker import wait_until
from webhooks import send_events
from webhooks.batches import ItemStatus

pytestmark = [pytest.mark.services]

QUICK = {"WEBHOOKS_RETRY_SCHEDULE": "0.05,0.05,0.05", "WEBHOOKS_BATCH_SIZE": "20"}


def nothing_pending() -> bool:
    return not Delivery.objects.filter(status=Delivery.Status.PENDING).exists()


@pytest.fixture
def tenant():
    EventTypeFactory(name="order.updated")
    return TenantFactory()


def test_every_delivery_of_a_batch_arrives_once_and_signed(start_worker, tenant, receiver):
    endpoints = [EndpointFactory(tenant=tenant, url=receiver.url(f"/e{n}")) for n in range(3)]
    secrets = {f"/e{n}": endpoint.secret for n, endpoint in enumerate(endpoints)}
    start_worker(concurrency=2, **QUICK)

    results = send_events(tenant, [("order.updated", {"n": n}) for n in range(100)])

    assert {result.status for result in results} == {ItemStatus.CREATED}
    wait_until(nothing_pending, 60, "the batch was not delivered")
    received = receiver.requests()
    arrivals = Counter((r.path, r.headers["webhook-id"]) for r in received)
    sent = {(path, result.event_id) for path in secrets for result in results}
    assert set(arrivals) == sent
    assert set(arrivals.values()) == {1}
    for request in received:
        data = standardwebhooks.Webhook(secrets[request.path]).verify(request.body, request.headers)
        assert data["type"] == "order.updated"
    assert Delivery.objects.filter(status=Delivery.Status.SUCCEEDED).count() == 300


class OrderedReceiver(Receiver):
    """Answers 500 to the first try of each event listed in `fail_once`; records arrivals."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_once: set[tuple[str, int]] = set()

    def _answer(self, received) -> int | str:
        data = json.loads(received.body)["data"]
        with self._lock:
            self._requests.append(received)
            if (data["key"], data["seq"]) in self.fail_once:
                self.fail_once.discard((data["key"], data["seq"]))
                return 500
        return 200

    def arrivals(self) -> dict[str, list[int]]:
        by_key: dict[str, list[int]] = defaultdict(list)
        for request in self.requests():
            data = json.loads(request.body)["data"]
            by_key[data["key"]].append(data["seq"])
        return dict(by_key)


def test_events_sharing_an_ordering_key_arrive_in_the_batchs_order(start_worker, tenant):
    with OrderedReceiver() as ordered:
        EndpointFactory(tenant=tenant, url=ordered.url("/hook"))
        ordered.fail_once = {("a", 2), ("b", 0)}
        ordered.delay = 0.005  # several deliveries in flight across the workers
        for _ in range(2):
            start_worker(concurrency=2, **QUICK)

        def item(key: str, seq: int) -> tuple:
            return ("order.updated", {"key": key, "seq": seq}, {"ordering_key": key})

        # Two keys interleaved, unkeyed events between them, and a second batch after the first.
        first = [item(key, seq) for seq in range(10) for key in ("a", "b")]
        first += [("order.updated", {"key": "none", "seq": seq}) for seq in range(5)]
        send_events(tenant, first)
        send_events(tenant, [item(key, seq) for seq in range(10, 15) for key in ("a", "b")])
        wait_until(nothing_pending, 60, "the keys were not drained")

        arrivals = ordered.arrivals()
    assert arrivals["a"] == [0, 1, 2, 2, *range(3, 15)]  # the failed one again, then the next
    assert arrivals["b"] == [0, 0, *range(1, 15)]
    assert sorted(arrivals["none"]) == list(range(5))
