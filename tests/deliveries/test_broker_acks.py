"""What the engine assumes of Celery on RabbitMQ, checked on a real server: a wake-up's message is
acknowledged only once its task has run (task_acks_late), so a worker killed in the middle gives
it back to the queue at once, and a pool process killed in the middle has it run again
(task_reject_on_worker_lost)."""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from pathlib import Path

import kombu
import pytest
from django.utils import timezone

from deliveries.dispatch import DELIVER_DUE
from deliveries.models import Delivery
from subscriptions.models import Endpoint
from tests.brokers import QUEUE, using_broker, waiting
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from tests.worker import wait_until
from webhooks import send_events

pytestmark = [pytest.mark.services]

EVENTS = 300
# One claim takes every due delivery: no helper is asked for, so the queue holds no other message.
ONE_BATCH = {"WEBHOOKS_BATCH_SIZE": str(2 * EVENTS)}


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid` (here: the worker's pool)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def test_a_killed_pool_process_runs_its_wake_up_again_and_a_killed_worker_gives_it_back(
    start_worker, receiver, rabbitmq_url
):
    EventTypeFactory(name="order.paid")
    tenant = TenantFactory()
    EndpointFactory(tenant=tenant, url=receiver.url("/first"))
    # Its deliveries wait behind an open circuit: emitting them wakes no worker.
    later = EndpointFactory(tenant=tenant, url=receiver.url("/later"),
                            circuit_open_until=timezone.now() + timedelta(hours=1))  # fmt: skip
    receiver.delay = 0.01
    with using_broker(rabbitmq_url):
        worker = start_worker(concurrency=1, beat=False, **ONE_BATCH)
        send_events(tenant, [("order.paid", {"n": n}) for n in range(EVENTS)])
        receiver.wait_for(10, "/first", timeout=20)
        # Due now, with no wake-up: only a task already queued can take them (there is no beat).
        Endpoint.objects.filter(pk=later.pk).update(circuit_open_until=None)
        Delivery.objects.filter(endpoint=later).update(next_attempt_at=timezone.now())

        [pool_process] = child_pids(worker.process.pid)
        os.kill(pool_process, signal.SIGKILL)
        # task_reject_on_worker_lost: the message went back to the queue, and ran again.
        receiver.wait_for(10, "/later", timeout=30)

        worker.kill()  # task_acks_late: the running task's message was not acknowledged

    wait_until(lambda: waiting(rabbitmq_url) == 1, 5, "the killed worker's message is not back")
    with kombu.Connection(rabbitmq_url) as connection:
        message = connection.SimpleQueue(QUEUE).get(timeout=5)
        assert message.headers["task"] == DELIVER_DUE
        assert message.delivery_info["redelivered"]
