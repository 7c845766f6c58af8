"""Wake-ups: a worker that is draining takes new events itself, and nothing is left unclaimed.

These run the worker's loop in-process with the task's own hooks, on the suite's broker and on
RabbitMQ, and read the broker's queue to see which wake-up tasks were published. The flags live
in Redis with a Redis broker or REDIS_URL, else in the database (deliveries.wake_flags).
"""

from __future__ import annotations

import pytest
import redis

from deliveries import dispatch, wake_flags
from deliveries.batch import deliver_until_idle
from deliveries.models import Delivery, WakeFlag
from deliveries.tasks import deliver_due
from tests.brokers import lose_messages, using_broker, waiting
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def flags(broker):
    """The wake-up flags, cleared, beside an empty queue on the test's broker."""
    store = wake_flags.store()
    store.clear(dispatch.WAKE_FLAG)
    store.clear(dispatch.HELP_FLAG)
    lose_messages(broker)
    yield store
    store.clear(dispatch.WAKE_FLAG)
    store.clear(dispatch.HELP_FLAG)
    lose_messages(broker)


@pytest.fixture
def tenant(receiver):
    EventTypeFactory(name="order.paid")
    tenant = TenantFactory()
    EndpointFactory(tenant=tenant, url=receiver.url("/a"))
    return tenant


def drain(*, while_draining=None, before_last_claim=None, limit=10) -> int:
    """The `deliver_due` task's loop, with a hook of the test's run after the task's own."""

    def then(own, extra):
        def hook():
            own()
            if extra is not None:
                extra()

        return hook

    return deliver_until_idle(
        limit=limit,
        budget_seconds=10,
        while_draining=then(dispatch.wake_flag_hold, while_draining),
        before_last_claim=then(dispatch.wake_flag_clear, before_last_claim),
        on_full_batch=dispatch.wake_helper,
        on_budget_spent=dispatch.hand_over,
    )


def test_an_event_sent_while_a_worker_drains_is_delivered_by_it_without_a_new_task(
    tenant, broker, flags, receiver
):
    send_event(tenant, "order.paid", {"n": 1})
    lose_messages(broker)  # the wake-up the first event queued: this loop stands for its task
    sent: list[int] = []

    def emit_once():
        if not sent:
            sent.append(send_event(tenant, "order.paid", {"n": 2}).id)

    assert drain(while_draining=emit_once) == 2

    assert waiting(broker) == 0  # the second event found the flag held and queued nothing
    assert len(receiver.requests("/a")) == 2
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SUCCEEDED}
    assert flags.holder(dispatch.WAKE_FLAG) is None  # released before the loop's last claim


def test_an_event_committed_as_the_worker_stops_is_claimed_or_wakes_another(
    tenant, broker, flags, receiver
):
    sent: list[int] = []

    def emit_once():
        if not sent:
            sent.append(send_event(tenant, "order.paid", {"n": 1}).id)

    delivered = drain(before_last_claim=emit_once)

    # Committed after the flag was cleared: the last claim takes it, and a wake-up is queued too.
    assert delivered == 1
    assert waiting(broker) == 1
    assert len(receiver.requests("/a")) == 1


def test_full_batches_ask_for_one_helper_until_a_worker_starts(broker, flags):
    dispatch.wake_helper()
    dispatch.wake_helper()
    assert waiting(broker) == 1

    dispatch.help_flag_clear()  # what a starting worker does
    dispatch.wake_helper()
    assert waiting(broker) == 2


def test_a_worker_whose_budget_ran_out_hands_over_though_the_flag_is_held(broker, flags):
    dispatch.wake_flag_hold()
    dispatch.wake_workers()
    assert waiting(broker) == 0

    dispatch.hand_over()
    assert waiting(broker) == 1


def test_a_wake_up_that_finds_another_worker_draining_leaves_the_work_to_it(
    tenant, broker, flags, receiver
):
    send_event(tenant, "order.paid", {"n": 1})
    flags.set(dispatch.WAKE_FLAG, "draining:another-host:1", dispatch.WAKE_FLAG_TTL_MS)

    assert deliver_due() == 0  # that worker claims again before it stops
    assert Delivery.objects.get().status == Delivery.Status.PENDING

    assert deliver_due(helper=True) == 1  # a helper, asked for by a full batch, drains anyway
    assert len(receiver.requests("/a")) == 1


def test_the_successor_of_a_worker_whose_budget_ran_out_does_not_wait_for_it(
    tenant, broker, flags, receiver
):
    send_event(tenant, "order.paid", {"n": 1})
    flags.set(dispatch.WAKE_FLAG, "draining:another-host:1", dispatch.WAKE_FLAG_TTL_MS)

    dispatch.hand_over()  # what that worker does as it stops

    assert deliver_due() == 1
    assert len(receiver.requests("/a")) == 1


def test_a_burst_of_events_queues_one_wake_up(tenant, broker, flags):
    for n in range(50):
        send_event(tenant, "order.paid", {"n": n})

    assert waiting(broker) == 1
    assert flags.holder(dispatch.WAKE_FLAG) == dispatch.QUEUED


@pytest.mark.services
def test_with_redis_url_the_flags_live_in_redis_whatever_the_broker(tenant, rabbitmq_url, settings):
    settings.REDIS_URL = settings.CELERY_BROKER_URL  # the suite's Redis
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(dispatch.WAKE_FLAG)
    lose_messages(rabbitmq_url)
    with using_broker(rabbitmq_url):
        for n in range(5):
            send_event(tenant, "order.paid", {"n": n})

    assert waiting(rabbitmq_url) == 1
    assert client.get(dispatch.WAKE_FLAG) == dispatch.QUEUED.encode()
    assert not WakeFlag.objects.exists()
    client.delete(dispatch.WAKE_FLAG)
    lose_messages(rabbitmq_url)
