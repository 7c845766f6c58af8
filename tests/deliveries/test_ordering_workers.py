"""Ordering keys with real worker processes, several claiming at once, against a real receiver
that answers each delivery as a plan says: every key arrives in emission order, through retries,
dead letters, replays, an open circuit and a SIGKILLed worker."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deliveries.models import Delivery
from deliveries.services import deliveries_replay
from subscriptions.models import Endpoint
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from tests.receiver import Received, Receiver
from tests.worker import wait_until
from webhooks import send_event

pytestmark = [pytest.mark.services]

# Three attempts a delivery, close together: a head that fails three times is dead-lettered.
QUICK = {"WEBHOOKS_RETRY_SCHEDULE": "0.05,0.05", "WEBHOOKS_BATCH_SIZE": "20"}
DEAD = 3  # failures that dead-letter a delivery under QUICK


class PlannedReceiver(Receiver):
    """Answers `failures[(key, seq)]` times 500 to that event, then 200; records arrivals."""

    def __init__(self) -> None:
        super().__init__()
        self.failures: dict[tuple[str, int], int] = {}

    def _answer(self, received: Received) -> int | str:
        data = json.loads(received.body)["data"]
        with self._lock:
            self._requests.append(received)
            left = self.failures.get((data["key"], data["seq"]), 0)
            if left:
                self.failures[(data["key"], data["seq"])] = left - 1
                return 500
        return 200

    def arrivals(self) -> dict[str, list[int]]:
        """Each key's sequence numbers, in the order their requests arrived."""
        by_key: dict[str, list[int]] = defaultdict(list)
        for request in self.requests():
            data = json.loads(request.body)["data"]
            by_key[data["key"]].append(data["seq"])
        return dict(by_key)


@pytest.fixture
def planned():
    with PlannedReceiver() as server:
        yield server


@pytest.fixture
def tenant():
    EventTypeFactory(name="order.updated")
    return TenantFactory()


def emit(tenant, key: str, seqs: range) -> None:
    for seq in seqs:
        send_event(tenant, "order.updated", {"key": key, "seq": seq}, ordering_key=key)


def nothing_pending() -> bool:
    return not Delivery.objects.filter(status=Delivery.Status.PENDING).exists()


def assert_in_order(arrivals: dict[str, list[int]]) -> None:
    for key, seqs in arrivals.items():
        assert seqs == sorted(seqs), f"key {key} arrived out of order: {seqs}"


@pytest.mark.parametrize("workers", [2, 3])
def test_keys_arrive_in_order_through_retries_and_dead_letters(
    start_worker, tenant, planned, workers
):
    EndpointFactory(tenant=tenant, url=planned.url("/hook"))
    planned.failures = {("retried", 0): 2, ("dead", 0): DEAD, ("dead", 3): 1}
    planned.delay = 0.01  # keep several deliveries in flight across the workers
    for _n in range(workers):
        start_worker(concurrency=2, **QUICK)
    with transaction.atomic():
        for key in ("retried", "dead", "calm-1", "calm-2"):
            emit(tenant, key, range(6))
        for seq in range(6):
            send_event(tenant, "order.updated", {"key": "unkeyed", "seq": seq})
    wait_until(nothing_pending, 60, "the keys were not drained")

    arrivals = planned.arrivals()
    assert_in_order({key: seqs for key, seqs in arrivals.items() if key != "unkeyed"})
    assert arrivals["retried"] == [0, 0, 0, 1, 2, 3, 4, 5]
    assert arrivals["dead"] == [0, 0, 0, 1, 2, 3, 3, 4, 5]  # dead-lettered, then the next went
    assert arrivals["calm-1"] == arrivals["calm-2"] == list(range(6))
    assert sorted(arrivals["unkeyed"]) == list(range(6))
    failed = Delivery.objects.filter(status=Delivery.Status.FAILED)
    assert [d.event.payload for d in failed] == [{"key": "dead", "seq": 0}]


def test_a_replayed_dead_head_goes_before_what_was_emitted_after_it(start_worker, tenant, planned):
    EndpointFactory(tenant=tenant, url=planned.url("/hook"))
    planned.failures = {("k", 0): DEAD}
    start_worker(concurrency=3, **QUICK)
    emit(tenant, "k", range(3))
    wait_until(nothing_pending, 30, "the key was not drained")
    dead = Delivery.objects.get(status=Delivery.Status.FAILED)

    with transaction.atomic():  # replayed, and two more emitted, at once
        deliveries_replay(deliveries=Delivery.objects.filter(id=dead.id))
        emit(tenant, "k", range(3, 5))
    wait_until(nothing_pending, 30, "the replay was not drained")

    assert planned.arrivals()["k"] == [0, 0, 0, 1, 2, 0, 3, 4]
    dead.refresh_from_db()
    assert dead.status == Delivery.Status.SUCCEEDED


def test_a_circuit_opening_mid_key_keeps_the_order(start_worker, tenant, planned):
    endpoint = EndpointFactory(tenant=tenant, url=planned.url("/hook"))
    # Five failures in a row (the head's retries, then its next attempt after a probe) open the
    # circuit twice over; the head succeeds once the receiver is back.
    planned.failures = {("k", 2): 5}
    start_worker(
        concurrency=3,
        WEBHOOKS_CIRCUIT_FAILURES="2",
        WEBHOOKS_CIRCUIT_COOLDOWN="0.3",
        WEBHOOKS_RETRY_SCHEDULE="0.05,0.05,0.05,0.05,0.05,0.05",
    )
    emit(tenant, "k", range(3))
    emit(tenant, "j", range(3))
    wait_until(
        lambda: (
            Endpoint.objects.filter(id=endpoint.id, circuit_open_until__isnull=False).exists()
            or nothing_pending()
        ),
        30,
        "the circuit never opened",
    )
    emit(tenant, "k", range(3, 6))  # emitted while the circuit is open
    wait_until(nothing_pending, 60, "the keys were not drained after the circuit closed")

    arrivals = planned.arrivals()
    assert arrivals["k"] == [0, 1, 2, 2, 2, 2, 2, 2, 3, 4, 5]
    assert arrivals["j"] == [0, 1, 2]
    assert not Delivery.objects.filter(status=Delivery.Status.FAILED).exists()


def test_a_worker_killed_mid_key_loses_nothing_and_keeps_the_order(start_worker, tenant, planned):
    EndpointFactory(tenant=tenant, url=planned.url("/hook"))
    planned.delay = 0.05
    emit(tenant, "a", range(40))
    emit(tenant, "b", range(40))
    first = start_worker(concurrency=2, WEBHOOKS_LEASE_SECONDS="4", WEBHOOKS_TIMEOUT="2")
    wait_until(lambda: len(planned.requests()) >= 10, 30, "nothing delivered before the kill")

    first.kill()
    in_flight = Delivery.objects.exclude(leased_by="").filter(status="pending").count()
    start_worker(concurrency=2, WEBHOOKS_LEASE_SECONDS="4", WEBHOOKS_TIMEOUT="2")
    wait_until(nothing_pending, 60, "the keys were not drained after the kill")

    arrivals = planned.arrivals()
    assert in_flight > 0, "the kill should have caught a key's head in flight"
    # What the dead worker sent but had not recorded is sent again, in order and with the same
    # webhook-id: each key's first arrivals are in emission order, and every one arrived.
    for key in ("a", "b"):
        first_arrivals = list(dict.fromkeys(arrivals[key]))
        assert first_arrivals == list(range(40)), arrivals[key]
        resent = [seq for n, seq in enumerate(arrivals[key]) if seq in arrivals[key][:n]]
        assert resent == sorted(resent), arrivals[key]
    # What arrived twice was the same message, sent again after the kill.
    ids_by_seq: dict[tuple[str, int], set[str]] = defaultdict(set)
    for request in planned.requests():
        data = json.loads(request.body)["data"]
        ids_by_seq[(data["key"], data["seq"])].add(request.headers["webhook-id"])
    assert all(len(ids) == 1 for ids in ids_by_seq.values())


failure_plans = st.dictionaries(
    keys=st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(min_value=0, max_value=4)),
    values=st.integers(min_value=1, max_value=DEAD),
    max_size=6,
)


def test_any_failure_pattern_keeps_every_key_in_order(start_worker, tenant):
    start_worker(concurrency=3, **QUICK)
    runs = iter(range(1000))

    @settings(
        max_examples=6,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(plan=failure_plans)
    def check(plan: dict[tuple[str, int], int]) -> None:
        with PlannedReceiver() as receiver:
            receiver.failures = dict(plan)
            run = next(runs)
            EndpointFactory(tenant=tenant, url=receiver.url(f"/run-{run}"))
            with transaction.atomic():
                for key in ("a", "b", "c"):
                    emit(tenant, f"{key}", range(5))
            wait_until(nothing_pending, 60, f"plan {plan} was not drained")
            Endpoint.objects.filter(tenant=tenant).update(is_active=False)

            arrivals = receiver.arrivals()
            assert_in_order(arrivals)
            for key in ("a", "b", "c"):
                expected = []
                for seq in range(5):
                    expected += [seq] * min(plan.get((key, seq), 0) + 1, DEAD)
                assert arrivals[key] == expected, (key, plan)

    check()
