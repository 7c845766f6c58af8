"""Nothing is lost: real workers, a real broker and database, real receivers, broken on purpose."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.db.models import Count

from deliveries.models import Attempt, Delivery
from tests.brokers import SUITE_BROKER, lose_messages, using_broker
from tests.dbproxy import DatabaseProxy
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from tests.rabbitmq import PrivateRabbitMQ
from tests.receiver import HANG, RESET, Receiver
from tests.worker import wait_until
from webhooks import send_event

pytestmark = [pytest.mark.services]

# Short leases, so that a dead worker's deliveries come back within seconds.
FAST = {"WEBHOOKS_LEASE_SECONDS": "6", "WEBHOOKS_BATCH_SIZE": "50"}
# How long the recovery tests wait for every event; they run with the default lease.
RECOVERY_WAIT_SECONDS = 60


@pytest.fixture
def tenant():
    EventTypeFactory(name="order.paid")
    return TenantFactory()


def emit(tenant, count: int) -> set[str]:
    return {send_event(tenant, "order.paid", {"n": n}).public_id for n in range(count)}


def wait_for_ids(receiver: Receiver, expected: set[str], timeout: float) -> Counter[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = Counter(receiver.webhook_ids())
        if expected <= set(seen):
            return seen
        time.sleep(0.1)
    missing = expected - set(receiver.webhook_ids())
    raise AssertionError(f"{len(missing)} of {len(expected)} events never arrived")


def wait_all_finished(timeout: float) -> None:
    wait_until(
        lambda: not Delivery.objects.filter(status=Delivery.Status.PENDING).exists(),
        timeout,
        "deliveries still pending",
    )


def assert_duplicates_are_the_same_message(receiver: Receiver) -> None:
    bodies: dict[str, bytes] = {}
    for request in receiver.requests():
        if len(request.body) != int(request.headers["content-length"]):
            continue  # cut off by a killed worker: the receiver never got the message whole
        webhook_id = request.headers["webhook-id"]
        assert bodies.setdefault(webhook_id, request.body) == request.body


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("failure", "broker"),
    [("500", SUITE_BROKER), ("hang", SUITE_BROKER), ("refused", SUITE_BROKER),
     ("reset", SUITE_BROKER), ("500", "rabbitmq")],
    indirect=["broker"],
)  # fmt: skip
def test_failing_receiver_gets_every_attempt_then_dead_letters_then_admin_replay_delivers(
    start_worker, tenant, failure, broker, admin_client
):
    schedule = [0.2, 0.4, 0.6]
    port = closed_port()
    broken = None if failure == "refused" else Receiver(port).__enter__()
    if broken is not None:
        action = {"500": 500, "hang": HANG, "reset": RESET}[failure]
        broken.script("/hook", [action] * 4)
    EndpointFactory(tenant=tenant, url=f"http://127.0.0.1:{port}/hook")
    start_worker(**FAST)

    try:
        event = send_event(tenant, "order.paid", {"order_id": "o1"})
        wait_until(
            lambda: Delivery.objects.filter(event=event, status="failed").exists(),
            timeout=40,
            message=f"delivery not dead-lettered after a receiver that is {failure}",
        )
        delivery = Delivery.objects.get(event=event)
        attempts = list(delivery.attempts.order_by("number"))
        assert [a.number for a in attempts] == [1, 2, 3, 4]
        expected_kind = {"500": "http_status", "hang": "timeout", "refused": "connection",
                         "reset": "connection"}[failure]  # fmt: skip
        assert {a.error_kind for a in attempts} == {expected_kind}
        for earlier, later, delay in zip(attempts, attempts[1:], schedule, strict=False):
            gap = (later.started_at - earlier.started_at).total_seconds()
            assert gap >= delay * 0.8 + earlier.duration_ms / 1000 - 0.05
        dead_letters = admin_client.get("/admin/deliveries/deadletter/")
        assert f"/admin/deliveries/deadletter/{delivery.pk}/change/" in dead_letters.text

        if broken is None:
            broken = Receiver(port).__enter__()
        broken.script("/hook", [200])
        response = admin_client.post(
            "/admin/deliveries/deadletter/",
            {"action": "replay_deliveries", "_selected_action": [delivery.pk]},
        )
        assert response.status_code == 302
        wait_until(
            lambda: Delivery.objects.filter(pk=delivery.pk, status="succeeded").exists(),
            timeout=20,
            message="the replayed delivery did not succeed",
        )
    finally:
        if broken is not None:
            broken.__exit__(None, None, None)
    replayed = delivery.attempts.get(number=5)
    assert replayed.trigger == Attempt.Trigger.REPLAY
    assert replayed.response_status == 200
    assert broken.webhook_ids()[-1] == event.public_id


def test_worker_killed_mid_batch_loses_nothing(start_worker, tenant, receiver, broker):
    EndpointFactory(tenant=tenant, url=receiver.url("/hook"))
    receiver.delay = 0.003
    expected = emit(tenant, 1000)
    first = start_worker(**FAST)
    wait_until(lambda: len(receiver.requests()) >= 150, 30, "the first worker delivered nothing")

    first.kill()
    in_flight = Delivery.objects.exclude(leased_by="").count()
    start_worker(**FAST)

    seen = wait_for_ids(receiver, expected, timeout=60)
    wait_all_finished(timeout=20)
    assert set(seen) == expected
    assert in_flight > 0, "the kill should have caught deliveries mid-batch"
    assert_duplicates_are_the_same_message(receiver)
    assert Delivery.objects.filter(status=Delivery.Status.SUCCEEDED).count() == 1000


def test_wake_ups_lost_by_the_broker_mid_run_lose_nothing(start_worker, tenant, receiver, broker):
    """The queued wake-ups vanish while the flag still says one is queued: emitters go on
    skipping theirs until it expires, and the sweeper wakes a worker meanwhile."""
    EndpointFactory(tenant=tenant, url=receiver.url("/hook"))
    receiver.delay = 0.003
    start_worker(**FAST)
    expected = emit(tenant, 500)
    wait_until(lambda: len(receiver.requests()) >= 50, 30, "nothing delivered before the loss")

    lose_messages(broker)
    expected |= emit(tenant, 100)

    seen = wait_for_ids(receiver, expected, timeout=60)
    assert set(seen) == expected
    assert_duplicates_are_the_same_message(receiver)


@contextmanager
def private_redis() -> Iterator[tuple[str, Callable[[], None]]]:
    server = shutil.which("redis-server")
    assert server, "redis-server is needed for the broker-restart test"
    port = closed_port()
    command = [
        server,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]

    def start() -> subprocess.Popen:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        client = redis.Redis(port=port)
        wait_until(lambda: _pings(client), 10, "redis-server did not start")
        return process

    state = {"process": start()}

    def restart() -> None:
        state["process"].kill()
        state["process"].wait()
        time.sleep(1)
        state["process"] = start()

    try:
        yield f"redis://127.0.0.1:{port}/0", restart
    finally:
        state["process"].kill()
        state["process"].wait()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@contextmanager
def private_rabbitmq() -> Iterator[tuple[str, Callable[[], None]]]:
    if not PrivateRabbitMQ.launcher():
        message = "rabbitmq-server is needed for the broker-restart test on RabbitMQ"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    with PrivateRabbitMQ() as server:
        yield server.url, server.restart


@pytest.mark.parametrize(
    "private_broker", [private_redis, private_rabbitmq], ids=["redis", "rabbitmq"]
)
def test_broker_restarted_mid_run_loses_nothing(start_worker, tenant, receiver, private_broker):
    """A broker of the test's own, killed and started again: the workers reconnect, and what its
    restart lost is swept up."""
    EndpointFactory(tenant=tenant, url=receiver.url("/hook"))
    receiver.delay = 0.003
    with private_broker() as (broker_url, restart_broker), using_broker(broker_url):
        start_worker(**FAST)
        expected = emit(tenant, 500)
        wait_until(lambda: len(receiver.requests()) >= 50, 30, "nothing delivered before restart")

        restart_broker()
        expected |= emit(tenant, 100)

        seen = wait_for_ids(receiver, expected, timeout=60)
    assert set(seen) == expected
    assert_duplicates_are_the_same_message(receiver)


def test_database_connections_terminated_mid_run_lose_nothing(start_worker, tenant, receiver):
    EndpointFactory(tenant=tenant, url=receiver.url("/hook"))
    receiver.delay = 0.003
    start_worker(**FAST)
    expected = emit(tenant, 500)
    wait_until(lambda: len(receiver.requests()) >= 50, 30, "nothing delivered before the kill")

    terminated = 0
    for _ in range(3):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            terminated += cursor.fetchone()[0]
        time.sleep(0.3)
    assert terminated >= 1, "the worker's connections should have been cut"

    seen = wait_for_ids(receiver, expected, timeout=60)
    wait_all_finished(timeout=30)
    assert set(seen) == expected
    assert_duplicates_are_the_same_message(receiver)


def test_two_workers_never_attempt_a_delivery_twice(start_worker, tenant, receiver):
    EndpointFactory(tenant=tenant, url=receiver.url("/hook"))
    start_worker(**FAST)
    start_worker(**FAST)

    expected = emit(tenant, 1000)

    seen = wait_for_ids(receiver, expected, timeout=60)
    wait_all_finished(timeout=20)
    assert max(seen.values()) == 1
    assert Attempt.objects.count() == 1000
    assert json.loads(receiver.requests()[0].body)["type"] == "order.paid"


def test_expired_lease_is_taken_over_by_the_sweeper(start_worker, tenant, receiver):
    """A delivery claimed by a worker that vanished before attempting it is not stranded."""
    EndpointFactory(tenant=tenant, url=receiver.url("/hook"))
    event = send_event(tenant, "order.paid", {})
    Delivery.objects.filter(event=event).update(
        leased_by="a-worker-that-died",
        lease_expires_at=Delivery.objects.get(event=event).created_at + timedelta(seconds=1),
    )
    start_worker(**FAST)

    wait_for_ids(receiver, {event.public_id}, timeout=20)


def duplicates(seen: Counter[str]) -> int:
    """Requests beyond the first for each webhook-id."""
    return sum(seen.values()) - len(seen)


def test_worker_killed_mid_drain_is_taken_over_within_seconds_and_resends_only_its_last_sends(
    start_worker, tenant, receiver
):
    """SIGKILLed 5 s into a drain to a receiver that answers in 50 ms, with the default lease: what
    the worker sent is recorded as it goes, a fresh worker takes the rest within seconds, and
    only the sends of the last moments before the kill go again."""
    EndpointFactory(tenant=tenant, url=receiver.url("/hook"))
    receiver.delay = 0.05
    concurrency = 2
    # One full batch per worker process: every event is leased when the kill comes.
    expected = emit(tenant, concurrency * settings.WEBHOOKS_BATCH_SIZE)
    first = start_worker(concurrency=concurrency)
    started_at = receiver.wait_for(1, timeout=30)[0].at
    time.sleep(max(0.0, started_at + 5 - time.time()))

    first.kill()
    killed_at = time.time()
    sent_before = Counter(receiver.webhook_ids())
    leased = Delivery.objects.filter(status=Delivery.Status.PENDING).exclude(leased_by="").count()
    start_worker(concurrency=concurrency)

    seen = wait_for_ids(receiver, expected, timeout=RECOVERY_WAIT_SECONDS)
    wait_all_finished(timeout=20)
    # A request read after this moment cannot come from the killed worker: its last ones were on
    # the wire at the kill, and a fresh worker takes over a second to start.
    fresh = [r.at for r in receiver.requests() if r.at > killed_at + 0.5]
    recovery = fresh[0] - killed_at
    again = duplicates(seen)
    print(
        f"\nkill: sent before the kill {sum(sent_before.values())}, still leased {leased}, "
        f"first send by the fresh worker after {recovery:.1f} s, sent twice {again}, "
        f"all delivered {time.time() - killed_at:.1f} s after the kill"
    )
    assert set(seen) == expected
    assert Delivery.objects.filter(status=Delivery.Status.SUCCEEDED).count() == len(expected)
    assert_duplicates_are_the_same_message(receiver)
    # Per process: the send in flight, and those of the last quarter second (about five at 50 ms)
    # that were not recorded yet.
    assert again <= concurrency * 8
    assert recovery < 15


RECORDING = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND state IN ('active', 'idle in transaction')
  AND (query LIKE 'COPY "deliveries_attempt"%%' OR query LIKE '%%FROM unnest(%%')
"""


def test_database_connection_cut_while_recording_resends_nothing(start_worker, tenant, receiver):
    """The worker's connection is terminated in the middle of recording a batch: it reconnects
    and records again, so no delivery is sent twice and every attempt is stored once."""
    EndpointFactory(tenant=tenant, url=receiver.url("/hook"))
    receiver.delay = 0.005
    start_worker()
    expected = emit(tenant, 500)

    deadline = time.monotonic() + 30
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(RECORDING)
            if cursor.fetchone()[0]:
                break
        else:
            raise AssertionError("never caught the worker recording")
    cut_at = time.time()

    wait_all_finished(timeout=RECOVERY_WAIT_SECONDS)
    seen = wait_for_ids(receiver, expected, timeout=20)
    again = duplicates(seen)
    attempts = Attempt.objects.count()
    print(
        f"\nconnection cut while recording: sent twice {again}, attempts stored {attempts} for "
        f"{len(expected)} deliveries, all delivered {time.time() - cut_at:.1f} s after the cut"
    )
    assert set(seen) == expected
    assert Delivery.objects.filter(status=Delivery.Status.SUCCEEDED).count() == len(expected)
    assert again == 0
    assert attempts == len(expected)


def test_a_record_whose_commit_was_not_acknowledged_is_not_stored_twice(
    start_worker, tenant, receiver
):
    """The worker's connection drops after PostgreSQL committed a record but before the worker
    heard of it: the worker records again, finds that record stored, and stores nothing twice."""
    EndpointFactory(tenant=tenant, url=receiver.url("/hook"))
    receiver.delay = 0.005
    db = connection.settings_dict
    with DatabaseProxy(upstream=(db["HOST"], int(db["PORT"] or 5432))) as proxy:
        proxy.lose_commit_ack(after=b'COPY "deliveries_attempt"')
        worker = start_worker(
            DATABASE_URL=proxy.url(user=db["USER"] or "postgres", database=db["NAME"])
        )
        expected = emit(tenant, 500)

        wait_all_finished(timeout=RECOVERY_WAIT_SECONDS)
        seen = wait_for_ids(receiver, expected, timeout=20)
        worker.stop()  # while its connections still have somewhere to go
    twice = Attempt.objects.values("delivery").annotate(n=Count("id")).filter(n__gt=1).count()
    print(
        f"\ncommit acknowledgement lost: {proxy.acks_lost}; deliveries with two attempts stored "
        f"{twice}; sent twice {duplicates(seen)}"
    )
    assert proxy.acks_lost == 1
    assert Delivery.objects.filter(status=Delivery.Status.SUCCEEDED).count() == len(expected)
    assert twice == 0
    assert duplicates(seen) == 0
