"""An endpoint's rate limit holds across workers, and waiting for it holds up no one else."""

from __future__ import annotations

import time

import pytest

from deliveries.batch import deliver_due_batch
from deliveries.lanes import SlowLane
from deliveries.models import Delivery
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tenant():
    EventTypeFactory(name="order.paid")
    return TenantFactory()


def emit(tenant, count: int) -> None:
    for n in range(count):
        send_event(tenant, "order.paid", {"n": n})


def assert_spaced(receiver, path: str, per_second: float) -> None:
    """Sends came at about `per_second`, not in a burst, with room for scheduling jitter."""
    times = sorted(r.at for r in receiver.requests(path))
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.5 / per_second, gaps
    assert times[-1] - times[0] >= 0.8 * len(gaps) / per_second, gaps


def wait_until_delivered(count: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    done = Delivery.objects.filter(status=Delivery.Status.SUCCEEDED)
    while done.count() < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert done.count() == count


def test_sends_to_a_rate_limited_endpoint_are_spaced(tenant, receiver):
    EndpointFactory(tenant=tenant, url=receiver.url("/limited"), rate_limit=10)
    emit(tenant, 5)

    assert deliver_due_batch(limit=50) == 5

    assert len(receiver.requests("/limited")) == 5
    assert_spaced(receiver, "/limited", per_second=10)


def test_the_limit_holds_across_workers(tenant, receiver, settings):
    settings.WEBHOOKS_FAIR_CLAIMS = False  # two workers in one process: due order, whole batches
    EndpointFactory(tenant=tenant, url=receiver.url("/limited"), rate_limit=10)
    emit(tenant, 6)
    first, second = SlowLane(threads=1), SlowLane(threads=1)

    assert deliver_due_batch(limit=3, lane=first) == 3
    assert deliver_due_batch(limit=3, lane=second) == 3

    wait_until_delivered(6)
    assert len(receiver.requests("/limited")) == 6
    assert_spaced(receiver, "/limited", per_second=10)


def test_waiting_for_a_rate_limit_holds_up_no_other_endpoint(tenant, receiver):
    EndpointFactory(tenant=tenant, url=receiver.url("/limited"), rate_limit=2)
    EndpointFactory(tenant=tenant, url=receiver.url("/free"))
    emit(tenant, 4)
    lane = SlowLane(threads=2)

    started = time.monotonic()
    assert deliver_due_batch(limit=50, lane=lane) == 8

    assert time.monotonic() - started < 1.0  # four sends at 2/s take 1.5 s, on the side
    assert len(receiver.requests("/free")) == 4
    wait_until_delivered(8)
    assert_spaced(receiver, "/limited", per_second=2)
