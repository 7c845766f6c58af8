"""The benchmark's cost meter reads real processes, the database and the broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings

from benchmarks.costs import Meter, Reading, cpu_seconds, per_thousand, process_tree
from subscriptions.models import Endpoint
from tests.factories import EndpointFactory

BUSY = "import time\nend = time.process_time() + 5\nwhile time.process_time() < end: pass"


def test_a_process_tree_and_its_processor_time_are_read_from_the_system():
    # A parent that starts a busy child and waits for it: the child is in the tree, and its
    # processor time counts there, not in the parent's.
    parent = subprocess.Popen(
        [sys.executable, "-c",
         f"import subprocess, sys; subprocess.run([sys.executable, '-c', {BUSY!r}])"],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        tree = process_tree(parent.pid)
        while len(tree) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
            tree = process_tree(parent.pid)
        assert tree[0] == parent.pid
        assert len(tree) == 2
        child = tree[1]
        while cpu_seconds(child) < 0.1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cpu_seconds(child) >= 0.1
        assert cpu_seconds(parent.pid) < 0.1
    finally:
        for pid in reversed(process_tree(parent.pid)):
            os.kill(pid, signal.SIGKILL)
        parent.wait(timeout=30)
    assert cpu_seconds(parent.pid) == 0  # gone


def test_costs_are_scaled_to_1000_deliveries():
    before = Reading(1.0, 2.0, 0.5, 3.0, 1000, 10)
    after = Reading(1.5, 3.0, 0.6, 3.2, 501000, 12)

    assert per_thousand(before, after, deliveries=500) == {
        "host_cpu_s": 1.0,
        "worker_cpu_s": 2.0,
        "receiver_cpu_s": 0.2,
        "database_cpu_s": 0.4,
        "wal_bytes": 1_000_000,
        "broker_messages": 4.0,
    }


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_meter_reads_the_wal_written_and_the_messages_published():
    from celery import current_app

    meter = Meter(worker_pid=0, receiver_pid=0, broker_url=settings.CELERY_BROKER_URL)
    before = meter.read()

    EndpointFactory.create_batch(50)
    with current_app.connection_for_write() as connection:
        queue = connection.SimpleQueue("hookline-costs-test")
        for n in range(3):
            queue.put({"n": n})
        queue.clear()
        queue.close()
    after = meter.read()

    assert Endpoint.objects.count() == 50
    assert after.wal_bytes - before.wal_bytes > 50 * 100
    assert after.broker_messages - before.broker_messages >= 3
