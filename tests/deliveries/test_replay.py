"""Replaying deliveries: `deliveries_replay` and the `replay` command, with in-process batches."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from deliveries.batch import deliver_due_batch
from deliveries.models import Attempt, Delivery
from deliveries.services import deliveries_replay
from subscriptions.models import Endpoint, EventType
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event
from webhooks.models import Event

batch_db = pytest.mark.django_db(transaction=True)
command_db = pytest.mark.django_db

SINCE = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@pytest.fixture
def tenant():
    EventTypeFactory(name="order.paid")
    return TenantFactory()


def attempt_until_failed(delivery: Delivery, attempts: int) -> Delivery:
    """Run batches until `delivery` has used its `attempts` (the schedule must allow them)."""
    for _ in range(attempts):
        assert deliver_due_batch(limit=10) == 1
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.attempt_count == attempts
    return delivery


def history(delivery: Delivery) -> list[tuple[int, str, int | None]]:
    return [(a.number, a.trigger, a.response_status) for a in delivery.attempts.order_by("number")]


# --- deliveries_replay and the batch ------------------------------------------------------------


@batch_db
@pytest.mark.pgbouncer
def test_replayed_failed_delivery_gets_one_replay_attempt_with_the_same_webhook_id(
    tenant, receiver, settings
):
    settings.WEBHOOKS_RETRY_SCHEDULE = (0.0, 0.0)
    EndpointFactory(tenant=tenant, url=receiver.url("/hook"))
    receiver.script("/hook", [500, 500, 500])
    event = send_event(tenant, "order.paid", {"order_id": "o1"})
    delivery = attempt_until_failed(Delivery.objects.get(event=event), attempts=3)

    before = timezone.now()
    assert deliveries_replay(deliveries=Delivery.objects.filter(id=delivery.id)) == 1

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.PENDING
    assert delivery.next_trigger == Attempt.Trigger.REPLAY
    assert delivery.finished_at is None
    assert before <= delivery.next_attempt_at <= timezone.now()
    assert delivery.attempt_count == 3

    assert deliver_due_batch(limit=10) == 1  # the receiver now answers 200

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SUCCEEDED
    assert delivery.attempt_count == 4
    assert delivery.last_response_status == 200
    assert delivery.next_attempt_at is None
    assert delivery.next_trigger == Attempt.Trigger.SCHEDULED
    assert history(delivery) == [
        (1, "scheduled", 500),
        (2, "scheduled", 500),
        (3, "scheduled", 500),
        (4, "replay", 200),
    ]
    received = receiver.requests("/hook")
    assert len(received) == 4
    assert {r.headers["webhook-id"] for r in received} == {event.public_id}
    assert delivery.attempts.get(number=4).request_headers["webhook-id"] == event.public_id
    assert deliver_due_batch(limit=10) == 0


@batch_db
def test_failed_replay_is_dead_again_at_once_even_with_a_long_retry_schedule(
    tenant, receiver, settings
):
    settings.WEBHOOKS_RETRY_SCHEDULE = ()
    EndpointFactory(tenant=tenant, url=receiver.url("/down"))
    receiver.script("/down", [500])
    replayed = send_event(tenant, "order.paid", {"n": 1})
    delivery = attempt_until_failed(Delivery.objects.get(event=replayed), attempts=1)

    settings.WEBHOOKS_RETRY_SCHEDULE = (3600.0,) * 20
    deliveries_replay(deliveries=Delivery.objects.filter(id=delivery.id))
    fresh = send_event(tenant, "order.paid", {"n": 2})  # a scheduled attempt, for contrast
    receiver.script("/down", [503, 503])
    assert deliver_due_batch(limit=10) == 2

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.attempt_count == 2
    assert delivery.last_response_status == 503
    assert delivery.next_attempt_at is None
    assert delivery.finished_at is not None
    assert delivery.next_trigger == Attempt.Trigger.SCHEDULED
    assert history(delivery) == [(1, "scheduled", 500), (2, "replay", 503)]
    retried = Delivery.objects.get(event=fresh)
    assert retried.status == Delivery.Status.PENDING
    assert retried.next_attempt_at > timezone.now() + timedelta(minutes=30)
    assert deliver_due_batch(limit=10) == 0


@batch_db
def test_replay_leaves_pending_deliveries_alone_and_resends_succeeded_ones(
    tenant, receiver, settings
):
    settings.WEBHOOKS_RETRY_SCHEDULE = ()
    EndpointFactory(tenant=tenant, url=receiver.url("/ok"))
    EndpointFactory(tenant=tenant, url=receiver.url("/down"))
    receiver.script("/down", [500])
    first = send_event(tenant, "order.paid", {"n": 1})
    assert deliver_due_batch(limit=10) == 2
    succeeded = Delivery.objects.get(event=first, endpoint__url=receiver.url("/ok"))
    failed = Delivery.objects.get(event=first, endpoint__url=receiver.url("/down"))
    assert (succeeded.status, failed.status) == ("succeeded", "failed")
    second = send_event(tenant, "order.paid", {"n": 2})
    pending = list(Delivery.objects.filter(event=second).order_by("id"))
    assert len(pending) == 2

    assert deliveries_replay(deliveries=Delivery.objects.all()) == 2

    for delivery in pending:
        unchanged = Delivery.objects.get(id=delivery.id)
        assert unchanged.next_trigger == Attempt.Trigger.SCHEDULED
        assert unchanged.next_attempt_at == delivery.next_attempt_at
        assert unchanged.attempt_count == 0
    assert deliver_due_batch(limit=10) == 4
    succeeded.refresh_from_db()
    assert succeeded.status == Delivery.Status.SUCCEEDED
    assert history(succeeded) == [(1, "scheduled", 200), (2, "replay", 200)]
    assert [r.headers["webhook-id"] for r in receiver.requests("/ok")].count(first.public_id) == 2
    assert history(Delivery.objects.get(id=pending[0].id)) == [(1, "scheduled", 200)]


# --- the `replay` command -----------------------------------------------------------------------


def replay(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("replay", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def make_delivery(
    endpoint: Endpoint,
    *,
    status: str = Delivery.Status.FAILED,
    created_at: datetime = SINCE,
) -> Delivery:
    event = Event.objects.create(
        tenant=endpoint.tenant,
        event_type=EventType.objects.get(name="order.paid"),
        payload={},
        created_at=created_at,
    )
    finished = status != Delivery.Status.PENDING
    return Delivery.objects.create(
        event=event,
        endpoint=endpoint,
        status=status,
        attempt_count=1 if finished else 0,
        next_attempt_at=None if finished else created_at,
        created_at=created_at,
        finished_at=created_at if finished else None,
    )


def queued_ids() -> set[int]:
    return set(
        Delivery.objects.filter(
            status=Delivery.Status.PENDING, next_trigger=Attempt.Trigger.REPLAY
        ).values_list("id", flat=True)
    )


@command_db
@pytest.mark.pgbouncer
def test_replay_command_queues_the_given_deliveries_and_counts_what_it_queued(tenant):
    endpoint = EndpointFactory(tenant=tenant)
    failed = make_delivery(endpoint)
    succeeded = make_delivery(endpoint, status=Delivery.Status.SUCCEEDED)
    pending = make_delivery(endpoint, status=Delivery.Status.PENDING)
    untouched = make_delivery(endpoint)

    out, err = replay(str(failed.id), str(succeeded.id), str(pending.id))

    assert out.strip() == "Queued 2 of 3 deliveries for replay."
    assert queued_ids() == {failed.id, succeeded.id}
    assert Delivery.objects.get(id=untouched.id).status == Delivery.Status.FAILED
    assert "delivery" in err
    assert "3/3" in err


@command_db
def test_replay_command_by_endpoint_since_a_time_takes_only_its_failed_deliveries_from_then(
    tenant,
):
    endpoint, other = EndpointFactory(tenant=tenant), EndpointFactory(tenant=tenant)
    at_since = make_delivery(endpoint, created_at=SINCE)
    later = make_delivery(endpoint, created_at=SINCE + timedelta(days=1))
    too_early = make_delivery(endpoint, created_at=SINCE - timedelta(seconds=1))
    make_delivery(endpoint, status=Delivery.Status.SUCCEEDED, created_at=SINCE + timedelta(hours=1))
    make_delivery(endpoint, status=Delivery.Status.PENDING, created_at=SINCE + timedelta(hours=1))
    make_delivery(other, created_at=SINCE + timedelta(hours=1))

    out, err = replay("--endpoint", str(endpoint.id), "--since", "2026-11-28T09:00Z")

    assert out.strip() == "Queued 2 of 2 deliveries for replay."
    assert queued_ids() == {at_since.id, later.id}
    assert Delivery.objects.get(id=too_early.id).status == Delivery.Status.FAILED
    assert "delivery" in err


@command_db
def test_replay_command_reads_a_since_without_offset_as_utc(tenant):
    endpoint = EndpointFactory(tenant=tenant)
    at_since = make_delivery(endpoint, created_at=SINCE)
    make_delivery(endpoint, created_at=SINCE - timedelta(minutes=1))

    out, _ = replay("--endpoint", str(endpoint.id), "--since", "2026-11-28T09:00:00")

    assert out.strip() == "Queued 1 of 1 deliveries for replay."
    assert queued_ids() == {at_since.id}


@command_db
def test_replay_command_all_failed_queues_every_failed_delivery(tenant):
    first, second = EndpointFactory(tenant=tenant), EndpointFactory(tenant=tenant)
    failed = {make_delivery(first).id, make_delivery(second).id, make_delivery(second).id}
    make_delivery(first, status=Delivery.Status.SUCCEEDED)
    make_delivery(second, status=Delivery.Status.PENDING)

    out, err = replay("--all-failed")

    assert out.strip() == "Queued 3 of 3 deliveries for replay."
    assert queued_ids() == failed
    assert not Delivery.objects.filter(status=Delivery.Status.FAILED).exists()
    assert "delivery" in err


@command_db
@pytest.mark.pgbouncer
def test_replay_command_queues_a_large_selection_chunk_by_chunk(tenant, monkeypatch):
    monkeypatch.setattr("deliveries.management.commands.replay.CHUNK", 2)
    endpoint = EndpointFactory(tenant=tenant)
    failed = {make_delivery(endpoint).id for _ in range(5)}

    out, err = replay("--endpoint", str(endpoint.id))

    assert out.strip() == "Queued 5 of 5 deliveries for replay."
    assert queued_ids() == failed
    assert "5/5" in err


@command_db
def test_replay_command_says_when_there_is_nothing_to_replay(tenant):
    make_delivery(EndpointFactory(tenant=tenant), status=Delivery.Status.SUCCEEDED)

    out, _ = replay("--all-failed")

    assert out.strip() == "Nothing to replay."
    assert queued_ids() == set()


@command_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "Give delivery ids, or --endpoint ID, or --all-failed (one of them)."),
        (("--since", "2026-11-28T09:00Z"), "Give delivery ids, or --endpoint ID, or --all-failed"),
        (("{delivery}", "--since", "2026-11-28T09:00Z"), "--since applies to --endpoint"),
        (("{delivery}", "--all-failed"), "Give delivery ids, or --endpoint ID, or --all-failed"),
        (("--endpoint", "{endpoint}", "--all-failed"), "(one of them)"),
        (("{delivery}", "--endpoint", "{endpoint}"), "(one of them)"),
        (("{delivery}", "{missing}"), "No such delivery: {missing}"),
        (("--endpoint", "{missing}"), "No such endpoint: {missing}"),
        (
            ("--all-failed", "--since", "yesterday"),
            "--since must be an ISO 8601 time such as 2026-11-28T09:00Z, not 'yesterday'",
        ),
    ],
)
def test_replay_command_refuses_a_bad_selection_with_a_clear_error_and_changes_nothing(
    tenant, args, message
):
    endpoint = EndpointFactory(tenant=tenant)
    delivery = make_delivery(endpoint)
    values = {"delivery": delivery.id, "endpoint": endpoint.id, "missing": delivery.id + 10**6}

    with pytest.raises(CommandError) as raised:
        replay(*(arg.format(**values) for arg in args))

    assert message.format(**values) in str(raised.value)
    assert Delivery.objects.get(id=delivery.id).status == Delivery.Status.FAILED


@command_db
def test_replay_command_refuses_an_impossible_since_time_with_a_clear_error(tenant):
    make_delivery(EndpointFactory(tenant=tenant))

    with pytest.raises(CommandError, match="--since must be an ISO 8601 time"):
        replay("--all-failed", "--since", "2026-13-45T09:00Z")


@command_db
def test_replay_command_by_ids_warns_that_a_disabled_endpoint_holds_its_replays(tenant):
    endpoint = EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/off", is_active=False)
    delivery = make_delivery(endpoint)
    make_delivery(EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/on"))

    out, err = replay(str(delivery.id))

    assert out.strip() == "Queued 1 of 1 deliveries for replay."
    assert (
        "Endpoint http://127.0.0.1:9/off is disabled: its replays wait until it is enabled." in err
    )
    assert "http://127.0.0.1:9/on" not in err


@command_db
@pytest.mark.parametrize("selector", ["--endpoint", "--all-failed"])
def test_replay_command_by_endpoint_or_all_failed_warns_about_a_disabled_endpoint(tenant, selector):
    endpoint = EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/off", is_active=False)
    make_delivery(endpoint)
    args = ("--endpoint", str(endpoint.id)) if selector == "--endpoint" else ("--all-failed",)

    out, err = replay(*args)

    assert out.strip() == "Queued 1 of 1 deliveries for replay."
    assert "Endpoint http://127.0.0.1:9/off is disabled" in err
