"""Failing and hanging endpoints hurt no one: the circuit breaker, the per-batch cut-off, and the
slow lane. In-process batches and a real worker, against a real receiver."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from deliveries.batch import deliver_due_batch
from deliveries.circuit import cooldown_seconds, failure_streak
from deliveries.lanes import SlowLane
from deliveries.models import Delivery
from subscriptions.models import Endpoint
from subscriptions.services import endpoint_enable
from tests.deliveries.pauses import reopen_now
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from tests.receiver import HANG
from webhooks import send_event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tenant():
    EventTypeFactory(name="order.paid")
    return TenantFactory()


@pytest.fixture(autouse=True)
def breaker(settings):
    settings.WEBHOOKS_CIRCUIT_FAILURES = 3
    settings.WEBHOOKS_CIRCUIT_COOLDOWN = 60.0
    settings.WEBHOOKS_RETRY_SCHEDULE = (0.0,) * 10
    return settings


def emit(tenant, count: int) -> None:
    for n in range(count):
        send_event(tenant, "order.paid", {"n": n})


def pending(endpoint: Endpoint) -> list[Delivery]:
    return list(Delivery.objects.filter(endpoint=endpoint, status=Delivery.Status.PENDING))


def test_failure_streak_counts_failures_since_the_last_success():
    assert failure_streak(0, [False, False]) == 2
    assert failure_streak(4, [False]) == 5
    assert failure_streak(4, [False, True]) == 0
    assert failure_streak(4, [True, False, False]) == 2
    assert failure_streak(3, []) == 3


def test_cooldown_starts_at_the_threshold_and_doubles_up_to_the_cap():
    assert cooldown_seconds(2, threshold=3, base=30) is None
    assert cooldown_seconds(3, threshold=3, base=30) == 30
    assert cooldown_seconds(4, threshold=3, base=30) == 60
    assert cooldown_seconds(6, threshold=3, base=30) == 240
    assert cooldown_seconds(500, threshold=3, base=30) == 15 * 60


def test_failing_endpoint_is_paused_after_the_threshold_not_sent_every_message(tenant, receiver):
    down = EndpointFactory(tenant=tenant, url=receiver.url("/down"))
    receiver.script("/down", [500] * 100)
    emit(tenant, 10)

    assert deliver_due_batch(limit=50) == 10

    assert len(receiver.requests("/down")) == 3
    down.refresh_from_db()
    assert down.consecutive_failures == 3
    assert down.circuit_open_until > timezone.now() + timedelta(seconds=50)
    waiting = pending(down)
    assert len(waiting) == 10
    assert sorted(d.attempt_count for d in waiting) == [0] * 7 + [1] * 3
    assert deliver_due_batch(limit=50) == 0  # the circuit is open: nothing goes
    assert len(receiver.requests("/down")) == 3


def test_other_endpoints_keep_flowing_while_one_circuit_is_open(tenant, receiver):
    down = EndpointFactory(tenant=tenant, url=receiver.url("/down"))
    EndpointFactory(tenant=tenant, url=receiver.url("/up"))
    receiver.script("/down", [500] * 100)
    emit(tenant, 10)
    deliver_due_batch(limit=50)

    emit(tenant, 5)
    assert deliver_due_batch(limit=50) == 5

    assert len(receiver.requests("/up")) == 15
    assert len(receiver.requests("/down")) == 3
    assert len(pending(down)) == 15


def test_a_failed_probe_reopens_the_circuit_for_twice_as_long(tenant, receiver):
    down = EndpointFactory(tenant=tenant, url=receiver.url("/down"))
    receiver.script("/down", [500] * 100)
    emit(tenant, 10)
    deliver_due_batch(limit=50)
    reopen_now(down)

    assert deliver_due_batch(limit=50) == 1  # one probe, not the backlog

    assert len(receiver.requests("/down")) == 4
    down.refresh_from_db()
    assert down.consecutive_failures == 4
    assert down.circuit_open_until > timezone.now() + timedelta(seconds=110)
    assert deliver_due_batch(limit=50) == 0


def test_a_successful_probe_closes_the_circuit_and_the_backlog_drains(tenant, receiver):
    down = EndpointFactory(tenant=tenant, url=receiver.url("/down"))
    receiver.script("/down", [500] * 3)  # down for three attempts, then healthy
    emit(tenant, 10)
    deliver_due_batch(limit=50)
    reopen_now(down)

    assert deliver_due_batch(limit=50) == 1
    down.refresh_from_db()
    assert down.circuit_open_until is None
    assert down.consecutive_failures == 0

    assert deliver_due_batch(limit=50) == 9
    assert pending(down) == []
    assert len(set(receiver.webhook_ids("/down"))) == 10


def test_only_one_probe_goes_however_many_workers_claim(tenant, receiver):
    down = EndpointFactory(tenant=tenant, url=receiver.url("/down"))
    receiver.script("/down", [500] * 100)
    emit(tenant, 10)
    deliver_due_batch(limit=50)
    reopen_now(down)

    from deliveries.services import deliveries_claim_due

    first = deliveries_claim_due(limit=50)
    second = deliveries_claim_due(limit=50)

    assert len(first.deliveries) == 1
    assert second.deliveries == []


def test_enabling_an_endpoint_again_closes_its_circuit(tenant, receiver):
    down = EndpointFactory(tenant=tenant, url=receiver.url("/down"))
    receiver.script("/down", [500] * 3)
    emit(tenant, 5)
    deliver_due_batch(limit=50)

    endpoint_enable(endpoint=down)

    assert deliver_due_batch(limit=50) == 5
    assert pending(down) == []


def test_a_hanging_endpoint_costs_a_batch_one_timeout_not_one_per_delivery(
    tenant, receiver, settings
):
    settings.WEBHOOKS_TIMEOUT = 0.5
    receiver.hang_seconds = 2
    slow = EndpointFactory(tenant=tenant, url=receiver.url("/slow"))
    receiver.script("/slow", [HANG] * 100)
    emit(tenant, 8)

    started = time.monotonic()
    deliver_due_batch(limit=50)

    assert len(receiver.requests("/slow")) == 1
    assert time.monotonic() - started < 8 * 0.5  # the other seven were not tried
    slow.refresh_from_db()
    assert slow.is_slow
    assert slow.consecutive_failures == 1
    assert len(pending(slow)) == 8
    assert Delivery.objects.filter(endpoint=slow, leased_by="").count() == 8


def test_slow_lane_sends_to_slow_endpoints_while_the_batch_goes_on(tenant, receiver, settings):
    settings.WEBHOOKS_TIMEOUT = 2.0
    slow = EndpointFactory(tenant=tenant, url=receiver.url("/slow"), is_slow=True)
    EndpointFactory(tenant=tenant, url=receiver.url("/fast"))
    receiver.script("/slow", [HANG] * 100)
    receiver.hang_seconds = 1.0  # slow, but within the timeout
    emit(tenant, 3)
    lane = SlowLane(threads=2)

    assert deliver_due_batch(limit=50, lane=lane) == 6

    assert len(receiver.requests("/fast")) == 3  # done in the batch, without waiting
    assert lane.busy_endpoint_ids() == {slow.id}
    assert deliver_due_batch(limit=50, lane=lane) == 0  # a busy endpoint is not claimed again
    deadline = time.monotonic() + 10
    while pending(slow) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pending(slow) == []
    assert len(set(receiver.webhook_ids("/slow"))) == 3
    assert lane.busy_endpoint_ids() == frozenset()


def test_a_slow_endpoint_that_answers_fast_again_leaves_the_slow_lane(tenant, receiver):
    endpoint = EndpointFactory(tenant=tenant, url=receiver.url("/a"), is_slow=True)
    emit(tenant, 2)

    deliver_due_batch(limit=50)

    endpoint.refresh_from_db()
    assert not endpoint.is_slow


@pytest.mark.services
def test_worker_keeps_delivering_to_healthy_endpoints_while_one_hangs(
    tenant, receiver, start_worker
):
    receiver.hang_seconds = 5
    hanging = EndpointFactory(tenant=tenant, url=receiver.url("/hang"))
    receiver.script("/hang", [HANG] * 1000)
    healthy = [EndpointFactory(tenant=tenant, url=receiver.url(f"/ok{n}")) for n in range(3)]
    assert all(endpoint.is_active for endpoint in healthy)
    start_worker(
        concurrency=1,
        WEBHOOKS_TIMEOUT="2",
        WEBHOOKS_LEASE_SECONDS="10",
        WEBHOOKS_CIRCUIT_FAILURES="3",
        WEBHOOKS_CIRCUIT_COOLDOWN="60",
        WEBHOOKS_BATCH_SIZE="20",
    )

    emit(tenant, 60)

    # One worker process: without the cut-off and the slow lane, 60 hangs of 2 s would come first.
    for n in range(len(healthy)):
        receiver.wait_for(60, path=f"/ok{n}", timeout=15)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        hanging.refresh_from_db()
        if hanging.circuit_open_until is not None and hanging.consecutive_failures >= 3:
            break
        time.sleep(0.2)
    assert hanging.circuit_open_until is not None
    assert hanging.consecutive_failures >= 3
    assert len(receiver.requests("/hang")) <= 5
    assert len(pending(hanging)) == 60


def test_a_send_that_stalls_is_left_to_finish_while_a_new_sender_takes_the_rest(
    tenant, receiver, settings
):
    settings.WEBHOOKS_TIMEOUT = 2.0
    settings.WEBHOOKS_SLOW_ATTEMPT_SECONDS = 0.3
    receiver.hang_seconds = 5
    hanging = EndpointFactory(tenant=tenant, url=receiver.url("/hang"))
    EndpointFactory(tenant=tenant, url=receiver.url("/fast"))
    receiver.script("/hang", [HANG] * 100)
    emit(tenant, 4)
    lane = SlowLane(threads=2)

    started = time.monotonic()
    assert deliver_due_batch(limit=50, lane=lane) == 8
    took = time.monotonic() - started

    assert took < 1.5  # not the 2 s timeout: the batch went on without the stalled send
    assert len(receiver.requests("/fast")) == 4
    assert len(receiver.requests("/hang")) == 1
    assert lane.busy_endpoint_ids() == {hanging.id}
    in_flight = Delivery.objects.filter(endpoint=hanging).exclude(leased_by="")
    assert in_flight.count() == 1  # still leased to the stalled sender, not released
    assert deliver_due_batch(limit=50, lane=lane) == 0  # nothing more for the hanging endpoint

    deadline = time.monotonic() + 5
    while lane.busy_endpoint_ids() and time.monotonic() < deadline:
        time.sleep(0.1)
    stalled = Delivery.objects.get(endpoint=hanging, attempt_count=1)
    assert stalled.leased_by == ""
    assert stalled.attempts.get().error_kind == "timeout"
    hanging.refresh_from_db()
    assert hanging.is_slow
