"""Operational notifications: dead letters past the threshold, overdue deliveries and disabled
endpoints are told once per condition (a signal, an email, a signed operational webhook), not
once per attempt, and re-armed when the condition clears. In-process batches and sweeps against
a real receiver."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import standardwebhooks
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deliveries import transport
from deliveries.batch import deliver_due_batch
from deliveries.models import Delivery
from deliveries.services import deliveries_replay
from deliveries.signals import (
    dead_letters_over_threshold,
    deliveries_overdue,
    deliveries_overdue_recovered,
)
from deliveries.tasks import sweep_due_deliveries
from operations.alerts import alert_raise, alerts_watch_start
from operations.models import OperationalAlert
from subscriptions.models import Endpoint, generate_signing_secret
from subscriptions.services import endpoint_disable
from subscriptions.signals import endpoint_disabled
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from tests.receiver import HANG
from tests.worker import flush_broker, worker_database_url
from webhooks import send_event
from webhooks.signing import verify

pytestmark = pytest.mark.django_db(transaction=True)

OPERATOR = "Ops <ops@example.com>"
MEMBER = "alice@example.com"
SECRET = generate_signing_secret()
Kind = OperationalAlert.Kind
ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def tenant(django_user_model):
    EventTypeFactory(name="order.paid")
    tenant = TenantFactory()
    tenant.members.add(django_user_model.objects.create_user("alice", email=MEMBER))
    return tenant


@pytest.fixture(autouse=True)
def alert_settings(settings, receiver):
    settings.WEBHOOKS_OPERATOR_EMAILS = [OPERATOR]
    settings.WEBHOOKS_DEAD_LETTER_ALERT_THRESHOLD = 2
    settings.WEBHOOKS_OVERDUE_ALERT_SECONDS = 60.0
    settings.WEBHOOKS_RETRY_SCHEDULE = (0.0,)  # two attempts, the second at once
    settings.WEBHOOKS_OPERATIONAL_WEBHOOK_URL = receiver.url("/ops")
    settings.WEBHOOKS_OPERATIONAL_WEBHOOK_SECRET = SECRET
    return settings


@pytest.fixture
def heard():
    """Every operational signal sent during the test, as (signal name, arguments)."""
    sent: list[tuple[str, dict]] = []
    signals = {
        "dead_letters_over_threshold": dead_letters_over_threshold,
        "deliveries_overdue": deliveries_overdue,
        "deliveries_overdue_recovered": deliveries_overdue_recovered,
        "endpoint_disabled": endpoint_disabled,
    }
    receivers = {}
    for name, signal in signals.items():

        def on_signal(sender: type, name: str = name, **arguments: object) -> None:
            arguments.pop("signal")
            sent.append((name, arguments))

        receivers[name] = on_signal
        signal.connect(on_signal, weak=False)
    yield sent
    for name, signal in signals.items():
        signal.disconnect(receivers[name])


def drain() -> None:
    """Run batches until nothing is due (retries here fall due at once)."""
    for _ in range(20):
        if not deliver_due_batch(limit=50):
            return
    raise AssertionError("deliveries kept falling due")


def operational_events(receiver) -> list[dict]:
    """The operational webhooks received, each checked against its signature first."""
    events = []
    for request in receiver.requests("/ops"):
        verify(SECRET, request.headers, request.body)
        standardwebhooks.Webhook(SECRET).verify(request.body, request.headers)
        assert request.headers["content-type"] == "application/json"
        events.append(json.loads(request.body))
    return events


def failing_endpoint(tenant, receiver) -> Endpoint:
    receiver.script("/down", [500] * 40)
    return EndpointFactory(tenant=tenant, url=receiver.url("/down"))


def fail_events(tenant, count: int) -> None:
    for n in range(count):
        send_event(tenant, "order.paid", {"n": n})
    drain()


def dead_letters(endpoint: Endpoint) -> int:
    return Delivery.objects.filter(endpoint=endpoint, status=Delivery.Status.FAILED).count()


def refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/ops"


# --- dead letters past the threshold -------------------------------------------------------------


def test_dead_letters_past_the_threshold_tell_people_once_not_per_attempt(
    tenant, receiver, heard, mailoutbox
):
    endpoint = failing_endpoint(tenant, receiver)

    fail_events(tenant, 2)
    assert dead_letters(endpoint) == 2
    assert heard == []  # at the threshold, not past it
    assert mailoutbox == []
    assert receiver.requests("/ops") == []

    fail_events(tenant, 1)
    assert dead_letters(endpoint) == 3
    assert heard == [
        ("dead_letters_over_threshold", {"endpoint": endpoint, "dead_letters": 3, "threshold": 2})
    ]
    assert len(mailoutbox) == 1
    assert sorted(mailoutbox[0].to) == sorted([MEMBER, OPERATOR])
    assert endpoint.url in mailoutbox[0].subject
    assert "3 deliveries" in mailoutbox[0].body
    [event] = operational_events(receiver)
    assert event["type"] == "operations.dead_letters_over_threshold"
    assert event["timestamp"].endswith("Z")
    assert event["data"] == {
        "endpoint_id": endpoint.id,
        "endpoint_url": endpoint.url,
        "tenant_id": tenant.id,
        "tenant_slug": tenant.slug,
        "dead_letters": 3,
        "threshold": 2,
    }

    fail_events(tenant, 1)
    assert dead_letters(endpoint) == 4
    assert len(heard) == 1
    assert len(mailoutbox) == 1
    assert len(receiver.requests("/ops")) == 1
    assert OperationalAlert.objects.filter(cleared_at=None).count() == 1


def test_replay_below_the_threshold_rearms_the_alert_and_a_new_crossing_tells_again(
    tenant, receiver, heard, mailoutbox
):
    endpoint = failing_endpoint(tenant, receiver)
    fail_events(tenant, 4)
    assert len(heard) == 1

    # Still past the threshold after replaying one: the alert stays raised.
    deliveries_replay(deliveries=Delivery.objects.filter(id=Delivery.objects.first().id))
    sweep_due_deliveries()
    assert OperationalAlert.objects.filter(cleared_at=None).count() == 1

    deliveries_replay(deliveries=Delivery.objects.filter(endpoint=endpoint))
    sweep_due_deliveries()
    alert = OperationalAlert.objects.get()
    assert alert.cleared_at is not None
    assert len(heard) == 1  # clearing a dead-letter alert is silent

    drain()  # the replays fail again: back in the queue, past the threshold once more
    assert dead_letters(endpoint) == 4
    assert [name for name, _ in heard] == ["dead_letters_over_threshold"] * 2
    assert len(mailoutbox) == 2
    assert len(operational_events(receiver)) == 2
    assert OperationalAlert.objects.filter(cleared_at=None).count() == 1


def test_purging_dead_letters_rearms_the_alert(tenant, receiver, heard, mailoutbox):
    endpoint = failing_endpoint(tenant, receiver)
    fail_events(tenant, 3)
    assert len(heard) == 1
    sweep_due_deliveries()
    assert OperationalAlert.objects.filter(cleared_at=None).count() == 1

    Delivery.objects.filter(endpoint=endpoint).delete()
    sweep_due_deliveries()
    assert OperationalAlert.objects.filter(cleared_at=None).count() == 0

    fail_events(tenant, 2)
    assert len(heard) == 1
    fail_events(tenant, 1)
    assert len(heard) == 2
    assert len(mailoutbox) == 2


def test_each_endpoint_is_told_about_on_its_own(tenant, receiver, heard):
    first = failing_endpoint(tenant, receiver)
    fail_events(tenant, 3)
    receiver.script("/also-down", [500] * 40)
    second = EndpointFactory(tenant=tenant, url=receiver.url("/also-down"))

    fail_events(tenant, 1)  # the first endpoint's fourth, the second's first

    fail_events(tenant, 2)
    assert [args["endpoint"] for _, args in heard] == [first, second]
    assert [e["data"]["endpoint_id"] for e in operational_events(receiver)] == [first.id, second.id]


def test_batches_without_new_dead_letters_never_look_at_alerts(tenant, receiver):
    EndpointFactory(tenant=tenant, url=receiver.url("/ok"))
    receiver.script("/flaky", [500] * 3)
    EndpointFactory(tenant=tenant, url=receiver.url("/flaky"))
    for n in range(3):
        send_event(tenant, "order.paid", {"n": n})

    with CaptureQueriesContext(connection) as queries:
        assert deliver_due_batch(limit=50) == 6  # 3 successes, 3 failures that will be retried

    assert Delivery.objects.filter(status=Delivery.Status.FAILED).count() == 0
    assert not [q for q in queries if "operationalalert" in q["sql"]]


def test_an_endpoint_with_a_raised_alert_costs_one_query_per_batch_not_a_count(tenant, receiver):
    failing_endpoint(tenant, receiver)
    fail_events(tenant, 3)
    send_event(tenant, "order.paid", {})
    deliver_due_batch(limit=50)  # its first attempt

    with CaptureQueriesContext(connection) as queries:
        assert deliver_due_batch(limit=50) == 1  # its last: a new dead letter

    checks = [q["sql"] for q in queries if "operationalalert" in q["sql"]]
    assert len(checks) == 1
    assert not [q for q in queries if "COUNT(" in q["sql"].upper()]


def test_a_threshold_of_zero_turns_the_dead_letter_alert_off(
    tenant, receiver, heard, mailoutbox, settings
):
    settings.WEBHOOKS_DEAD_LETTER_ALERT_THRESHOLD = 0
    endpoint = failing_endpoint(tenant, receiver)
    fail_events(tenant, 5)
    assert dead_letters(endpoint) == 5
    assert heard == []
    assert mailoutbox == []
    assert receiver.requests("/ops") == []


def test_workers_racing_on_one_condition_raise_one_alert():
    barrier = threading.Barrier(4)
    raised: list[OperationalAlert | None] = []

    def raise_it() -> None:
        try:
            barrier.wait()
            raised.append(
                alert_raise(kind=Kind.DEAD_LETTERS_OVER_THRESHOLD, subject="7", details={})
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=raise_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len([alert for alert in raised if alert is not None]) == 1
    assert OperationalAlert.objects.count() == 1


# --- overdue deliveries --------------------------------------------------------------------------


def make_due(seconds_ago: float, **filters: object) -> None:
    when = timezone.now() - timedelta(seconds=seconds_ago)
    Delivery.objects.filter(**filters).update(next_attempt_at=when)


def test_overdue_deliveries_tell_the_operators_once_and_again_when_they_are_delivered(
    tenant, receiver, heard, mailoutbox
):
    EndpointFactory(tenant=tenant, url=receiver.url("/ok"))
    for n in range(3):
        send_event(tenant, "order.paid", {"n": n})
    make_due(120)

    assert sweep_due_deliveries() is True
    assert sweep_due_deliveries() is True

    [(name, arguments)] = heard
    assert name == "deliveries_overdue"
    assert arguments["deliveries"] == 3
    assert arguments["late_by"] == 60.0
    assert timezone.now() - arguments["oldest_due_at"] >= timedelta(seconds=120)
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [OPERATOR]  # the operators alone: workers are not a tenant's matter
    assert "overdue" in mailoutbox[0].subject
    [event] = operational_events(receiver)
    assert event["type"] == "operations.deliveries_overdue"
    assert event["data"]["overdue_deliveries"] == 3
    assert event["data"]["overdue_after_seconds"] == 60.0

    drain()
    assert len(receiver.requests("/ok")) == 3
    assert sweep_due_deliveries() is False
    assert sweep_due_deliveries() is False

    assert [name for name, _ in heard] == ["deliveries_overdue", "deliveries_overdue_recovered"]
    assert len(mailoutbox) == 2
    assert "caught up" in mailoutbox[1].subject
    events = operational_events(receiver)
    assert [e["type"] for e in events] == [
        "operations.deliveries_overdue",
        "operations.deliveries_overdue_recovered",
    ]
    assert OperationalAlert.objects.get().cleared_at is not None


def test_held_leased_paced_and_recent_deliveries_are_not_overdue(tenant, receiver, heard):
    now = timezone.now()
    disabled = EndpointFactory(tenant=tenant, url=receiver.url("/disabled"))
    paused = EndpointFactory(tenant=tenant, url=receiver.url("/paused"))
    EndpointFactory(tenant=tenant, url=receiver.url("/limited"), rate_limit=1)
    slow = EndpointFactory(tenant=tenant, url=receiver.url("/slow"))
    leased = EndpointFactory(tenant=tenant, url=receiver.url("/leased"))
    recent = EndpointFactory(tenant=tenant, url=receiver.url("/recent"))
    send_event(tenant, "order.paid", {})
    Endpoint.objects.filter(id=disabled.id).update(is_active=False)
    Endpoint.objects.filter(id=paused.id).update(circuit_open_until=now + timedelta(minutes=5))
    Endpoint.objects.filter(id=slow.id).update(is_slow=True)
    make_due(120)
    make_due(30, endpoint=recent)
    Delivery.objects.filter(endpoint=leased).update(
        leased_by="another worker", lease_expires_at=now + timedelta(minutes=1)
    )

    sweep_due_deliveries()
    assert heard == []
    assert not OperationalAlert.objects.exists()

    # The same sweep does see a plain overdue delivery.
    late = EndpointFactory(tenant=tenant, url=receiver.url("/late"))
    send_event(tenant, "order.paid", {})
    make_due(120, endpoint=late)
    sweep_due_deliveries()
    assert [(name, arguments["deliveries"]) for name, arguments in heard] == [
        ("deliveries_overdue", 1)
    ]


def test_a_zero_overdue_setting_turns_the_overdue_alert_off(tenant, receiver, heard, settings):
    settings.WEBHOOKS_OVERDUE_ALERT_SECONDS = 0
    EndpointFactory(tenant=tenant, url=receiver.url("/ok"))
    send_event(tenant, "order.paid", {})
    make_due(3600)
    sweep_due_deliveries()
    assert heard == []


def wait_until(condition, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_beat_watches_on_a_thread_of_its_own_so_no_worker_is_needed(tenant, receiver, heard):
    EndpointFactory(tenant=tenant, url=receiver.url("/ok"))
    send_event(tenant, "order.paid", {})
    make_due(120)

    stop = alerts_watch_start(interval=0.05)
    try:
        wait_until(lambda: len(heard) == 1)
        time.sleep(0.3)  # a few more checks
    finally:
        stop.set()
    assert [name for name, _ in heard] == ["deliveries_overdue"]


def test_a_beat_process_alone_reports_overdue_deliveries_while_every_worker_is_down(
    tenant, receiver, tmp_path, settings
):
    EndpointFactory(tenant=tenant, url=receiver.url("/ok"))
    send_event(tenant, "order.paid", {})
    make_due(120)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": worker_database_url(),
        "WEBHOOKS_OPERATIONAL_WEBHOOK_URL": receiver.url("/ops"),
        "WEBHOOKS_OPERATIONAL_WEBHOOK_SECRET": SECRET,
    }
    command = [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
               "--schedule", str(tmp_path / "beat-schedule")]  # fmt: skip
    log = (tmp_path / "beat.log").open("wb")
    beat = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        receiver.wait_for(1, "/ops", timeout=30)
    except AssertionError:
        raise AssertionError((tmp_path / "beat.log").read_text()) from None
    finally:
        beat.terminate()
        beat.wait(timeout=20)
        flush_broker(settings.CELERY_BROKER_URL)  # the sweeps beat queued for no worker
    [event] = operational_events(receiver)
    assert event["type"] == "operations.deliveries_overdue"
    assert event["data"]["overdue_deliveries"] == 1
    assert receiver.requests("/ok") == []


# --- the operational webhook failing -------------------------------------------------------------


def test_an_operational_webhook_answering_500_is_retried_briefly_and_breaks_nothing(
    tenant, receiver, heard, mailoutbox
):
    receiver.script("/ops", [500, 500, 500])
    EndpointFactory(tenant=tenant, url=receiver.url("/ok"))
    send_event(tenant, "order.paid", {})
    make_due(120)

    assert sweep_due_deliveries() is True

    requests = receiver.requests("/ops")
    assert len(requests) == 3
    assert len({r.headers["webhook-id"] for r in requests}) == 1  # one message, tried three times
    assert len(heard) == 1
    assert len(mailoutbox) == 1
    # Told once per condition, even when the webhook could not be delivered.
    assert sweep_due_deliveries() is True
    assert len(receiver.requests("/ops")) == 3
    drain()
    assert receiver.requests("/ok")


def test_a_refused_operational_webhook_url_breaks_neither_the_batch_nor_the_sweeper(
    tenant, receiver, heard, mailoutbox, settings
):
    settings.WEBHOOKS_OPERATIONAL_WEBHOOK_URL = refused_url()
    endpoint = failing_endpoint(tenant, receiver)

    fail_events(tenant, 3)
    assert dead_letters(endpoint) == 3
    assert len(heard) == 1
    assert len(mailoutbox) == 1

    send_event(tenant, "order.paid", {})
    make_due(120, status=Delivery.Status.PENDING)
    assert sweep_due_deliveries() is True
    assert [name for name, _ in heard] == ["dead_letters_over_threshold", "deliveries_overdue"]


def test_a_signal_receiver_that_raises_stops_neither_the_email_nor_the_webhook(
    tenant, receiver, mailoutbox
):
    def broken(**_: object) -> None:
        raise RuntimeError("a host application's bug")

    deliveries_overdue.connect(broken, weak=False)
    try:
        EndpointFactory(tenant=tenant, url=receiver.url("/ok"))
        send_event(tenant, "order.paid", {})
        make_due(120)
        assert sweep_due_deliveries() is True
    finally:
        deliveries_overdue.disconnect(broken)
    assert len(mailoutbox) == 1
    assert len(operational_events(receiver)) == 1


def test_the_operational_webhook_waits_for_a_hanging_receiver_only_as_long_as_its_timeout(
    receiver,
):
    started = time.monotonic()
    receiver.script("/hang", [HANG])
    result = transport.post(receiver.url("/hang"), b"{}", {}, timeout=0.3)
    assert result.error_kind == "timeout"
    assert time.monotonic() - started < 2


# --- endpoint disabled ---------------------------------------------------------------------------


def test_a_disabled_endpoint_is_also_told_through_the_operational_webhook(
    tenant, receiver, heard, mailoutbox
):
    endpoint = EndpointFactory(tenant=tenant, url=receiver.url("/gone"))
    receiver.script("/gone", [410])
    send_event(tenant, "order.paid", {})

    drain()

    endpoint.refresh_from_db()
    assert [name for name, _ in heard] == ["endpoint_disabled"]
    assert len(mailoutbox) == 1
    [event] = operational_events(receiver)
    assert event["type"] == "operations.endpoint_disabled"
    assert event["data"]["endpoint_id"] == endpoint.id
    assert event["data"]["tenant_slug"] == tenant.slug
    assert "410" in event["data"]["reason"]
    assert event["data"]["disabled_at"].endswith("Z")
    assert endpoint_disable(endpoint_ids=[endpoint.id], reason="again") == []
    assert len(receiver.requests("/ops")) == 1


# --- the admin -----------------------------------------------------------------------------------


def test_the_admin_lists_open_alerts_read_only(admin_client):
    alert_raise(kind=Kind.DEAD_LETTERS_OVER_THRESHOLD, subject="41", details={"dead_letters": 3})
    cleared = alert_raise(kind=Kind.DELIVERIES_OVERDUE, details={})
    OperationalAlert.objects.filter(id=cleared.id).update(cleared_at=timezone.now())

    response = admin_client.get("/admin/operations/operationalalert/?state=open")

    assert response.status_code == 200
    page = response.content.decode()
    assert "endpoint 41" in page
    assert "all deliveries" not in page
    assert admin_client.get("/admin/operations/operationalalert/add/").status_code == 403


# --- settings ------------------------------------------------------------------------------------


def start_django(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "WEBHOOKS_"))},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "HOOKLINE_VAR_DIR": str(tmp_path),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT, env=environment, capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.mark.django_db(transaction=False)
def test_an_operational_webhook_url_without_a_secret_stops_startup(tmp_path):
    url = "https://alerts.example.com/hookline?token=do-not-print"
    started = start_django(tmp_path, WEBHOOKS_OPERATIONAL_WEBHOOK_URL=url)
    assert started.returncode != 0
    assert "WEBHOOKS_OPERATIONAL_WEBHOOK_SECRET" in started.stderr
    assert "do-not-print" not in started.stderr

    started = start_django(
        tmp_path, WEBHOOKS_OPERATIONAL_WEBHOOK_URL=url, WEBHOOKS_OPERATIONAL_WEBHOOK_SECRET=SECRET
    )
    assert started.returncode == 0, started.stderr
