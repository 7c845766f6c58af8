"""Retention: the purge service, the `purge` command and the beat task `purge_expired`."""

from __future__ import annotations

import dataclasses
import io
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from deliveries.attempt_partitions import attempts_partitioned
from deliveries.models import Attempt, Delivery, HourlyStat, ReplayJob
from deliveries.services import deliveries_replay
from inbox.models import Inbox, InboxRequest
from operations import retention
from operations.retention import dead_letters_purge, retention_purge
from operations.tasks import purge_expired
from subscriptions.models import Endpoint
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks.models import Event

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CUTOFF = NOW - timedelta(days=30)
OLD = NOW - timedelta(days=40)
RECENT = NOW - timedelta(days=1)
SUCCEEDED, FAILED, PENDING = (
    Delivery.Status.SUCCEEDED,
    Delivery.Status.FAILED,
    Delivery.Status.PENDING,
)
CAPTURE = {
    "request_headers": {"webhook-id": "msg_x", "x-tenant-header": "t" * 200},
    "response_headers": {"content-type": "text/plain"},
    "response_body": "receiver said " + "b" * 300,
}


@pytest.fixture(autouse=True)
def no_remembered_position():
    """The cache outlives each test's rolled-back database: forget where walks stopped."""
    for position in (retention.BLANKED_ATTEMPTS, retention.CHECKED_EVENTS):
        position.forget()
    yield
    for position in (retention.BLANKED_ATTEMPTS, retention.CHECKED_EVENTS):
        position.forget()


@pytest.fixture
def plain_attempts():
    """For the walk that blanks attempts one batch after another: there only when attempts are a
    plain table. Stored by day (PostgreSQL), they are blanked as their day goes
    (tests/operations/test_retention_partitions.py)."""
    if attempts_partitioned():
        pytest.skip("attempts are stored a day a partition here: no blanking walk")


@pytest.fixture
def endpoint() -> Endpoint:
    return EndpointFactory(tenant=TenantFactory())


def event_at(endpoint: Endpoint, moment: datetime) -> Event:
    return Event.objects.create(
        tenant=endpoint.tenant,
        event_type=EventTypeFactory(),
        payload={"order_id": "o1"},
        created_at=moment,
    )


def delivery_at(
    endpoint: Endpoint,
    moment: datetime,
    status: str,
    *,
    attempts: int = 2,
    event: Event | None = None,
    finished_at: datetime | None = None,
) -> Delivery:
    """A delivery created at `moment` with its attempts, a minute apart, each with a capture."""
    delivery = Delivery.objects.create(
        event=event or event_at(endpoint, moment),
        endpoint=endpoint,
        status=status,
        attempt_count=attempts,
        created_at=moment,
        finished_at=None
        if status == PENDING
        else finished_at or moment + timedelta(minutes=attempts),
    )
    for number in range(1, attempts + 1):
        attempt_at(delivery, number, moment + timedelta(minutes=number - 1))
    return delivery


def attempt_at(delivery: Delivery, number: int, moment: datetime) -> Attempt:
    return Attempt.objects.create(
        delivery=delivery,
        number=number,
        started_at=moment,
        duration_ms=12.0,
        url=delivery.endpoint.url,
        response_status=200 if delivery.status == SUCCEEDED else 500,
        error_kind="" if delivery.status == SUCCEEDED else Attempt.ErrorKind.HTTP_STATUS,
        error_message="" if delivery.status == SUCCEEDED else "HTTP 500",
        **CAPTURE,
    )


@dataclasses.dataclass
class World:
    old_succeeded: list[Delivery]
    shared_event: Event  # an old succeeded delivery and an old failed one
    shared_failed: Delivery
    old_failed: Delivery
    old_pending: Delivery
    replayed: Delivery  # created long ago, replayed and succeeded yesterday
    old_orphan: Event  # never had a delivery
    new_orphan: Event
    new_succeeded: Delivery
    new_failed: Delivery
    old_inbox_request: InboxRequest
    new_inbox_request: InboxRequest
    old_job: ReplayJob
    new_job: ReplayJob
    running_job: ReplayJob


@pytest.fixture
def world(endpoint) -> World:
    """Deliveries of every status and age, created oldest first, as ids grow with time."""
    minute = timedelta(minutes=1)
    old_succeeded = [delivery_at(endpoint, OLD + i * minute, SUCCEEDED) for i in range(5)]
    # One event's two deliveries, which batches of two split: it goes with the second.
    pair_event = event_at(endpoint, OLD + 5 * minute)
    old_succeeded += [
        delivery_at(endpoint, OLD + 5 * minute, SUCCEEDED, event=pair_event, attempts=1)
        for _ in range(2)
    ]
    shared_event = event_at(endpoint, OLD + 10 * minute)
    old_succeeded.append(
        delivery_at(endpoint, OLD + 10 * minute, SUCCEEDED, event=shared_event, attempts=1)
    )
    shared_failed = delivery_at(endpoint, OLD + 10 * minute, FAILED, event=shared_event)
    old_failed = delivery_at(endpoint, OLD + 20 * minute, FAILED, attempts=3)
    old_pending = delivery_at(endpoint, OLD + 30 * minute, PENDING, attempts=1)
    replayed = delivery_at(endpoint, OLD + 40 * minute, SUCCEEDED, attempts=1, finished_at=RECENT)
    old_orphan = event_at(endpoint, OLD + 50 * minute)
    inbox = Inbox.objects.create(tenant=endpoint.tenant)
    old_inbox_request = InboxRequest.objects.create(
        inbox=inbox, received_at=OLD, method="POST", body="{}", response_status=200
    )
    old_job = ReplayJob.objects.create(
        tenant=endpoint.tenant,
        endpoint=endpoint,
        since=OLD,
        status=ReplayJob.Status.DONE,
        created_at=OLD,
        finished_at=OLD + minute,
    )
    Delivery.objects.filter(id=old_failed.id).update(replay_job=old_job)
    running_job = ReplayJob.objects.create(
        tenant=endpoint.tenant,
        endpoint=endpoint,
        since=OLD,
        status=ReplayJob.Status.RUNNING,
        created_at=OLD + minute,
    )
    # Yesterday: the replay of the old delivery, and new traffic.
    attempt_at(replayed, 2, RECENT)
    new_orphan = event_at(endpoint, RECENT)
    new_succeeded = delivery_at(endpoint, RECENT, SUCCEEDED)
    new_failed = delivery_at(endpoint, RECENT, FAILED)
    new_inbox_request = InboxRequest.objects.create(
        inbox=inbox, received_at=RECENT, method="POST", body="{}", response_status=200
    )
    new_job = ReplayJob.objects.create(
        tenant=endpoint.tenant,
        endpoint=endpoint,
        since=RECENT,
        status=ReplayJob.Status.DONE,
        created_at=RECENT,
        finished_at=RECENT,
    )
    return World(
        old_succeeded,
        shared_event,
        shared_failed,
        old_failed,
        old_pending,
        replayed,
        old_orphan,
        new_orphan,
        new_succeeded,
        new_failed,
        old_inbox_request,
        new_inbox_request,
        old_job,
        new_job,
        running_job,
    )


def ids(rows) -> set[int]:
    return {row.id for row in rows}


def has_capture(attempt: Attempt) -> bool:
    return (
        attempt.request_headers == CAPTURE["request_headers"]
        and attempt.response_headers == CAPTURE["response_headers"]
        and attempt.response_body == CAPTURE["response_body"]
    )


def database_snapshot() -> dict[str, object]:
    return {
        "deliveries": sorted(Delivery.objects.values_list("id", "status", "replay_job_id")),
        "attempts": sorted(
            Attempt.objects.values_list("id", "request_headers", "response_headers")
        ),
        "bodies": sorted(Attempt.objects.values_list("id", "response_body")),
        "events": sorted(Event.objects.values_list("id", flat=True)),
        "inbox": sorted(InboxRequest.objects.values_list("id", flat=True)),
        "jobs": sorted(ReplayJob.objects.values_list("id", flat=True)),
    }


# --- the service ----------------------------------------------------------------------------------


@pytest.mark.pgbouncer
def test_purge_deletes_old_succeeded_deliveries_and_keeps_failed_and_pending_ones(world):
    counts = retention_purge(before=CUTOFF, batch_size=2)

    kept = [
        world.shared_failed,
        world.old_failed,
        world.old_pending,
        world.replayed,
        world.new_succeeded,
        world.new_failed,
    ]
    assert ids(Delivery.objects.all()) == ids(kept)
    assert not Attempt.objects.filter(delivery_id__in=ids(world.old_succeeded)).exists()
    assert ids(Event.objects.all()) == {d.event_id for d in kept} | {world.new_orphan.id}
    assert world.shared_event.id in ids(Event.objects.all())  # its failed delivery is kept
    assert ids(InboxRequest.objects.all()) == {world.new_inbox_request.id}
    assert ids(ReplayJob.objects.all()) == {world.new_job.id, world.running_job.id}
    world.old_failed.refresh_from_db()
    assert world.old_failed.replay_job_id is None
    assert (counts.deliveries, counts.attempts, counts.events) == (8, 13, 7)
    assert (counts.inbox_requests, counts.replay_jobs, counts.complete) == (1, 1, True)


@pytest.mark.pgbouncer
def test_kept_attempts_older_than_the_cutoff_lose_their_capture_but_stay_in_the_timeline(world):
    counts = retention_purge(before=CUTOFF, batch_size=2)

    blanked = Attempt.objects.filter(
        delivery__in=[world.shared_failed, world.old_failed, world.old_pending]
    ) | Attempt.objects.filter(delivery=world.replayed, number=1)
    assert blanked.count() == 2 + 3 + 1 + 1
    for attempt in blanked:
        assert (attempt.request_headers, attempt.response_headers, attempt.response_body) == (
            {},
            {},
            "",
        )
        # The timeline stays: when, what came back, what went wrong.
        assert attempt.response_status is not None
        assert attempt.started_at < CUTOFF
    assert counts.attempts_blanked == 7
    recent = Attempt.objects.filter(started_at__gte=CUTOFF)
    assert recent.count() == 1 + 2 + 2  # the replay, the new succeeded, the new failed
    assert all(has_capture(attempt) for attempt in recent)


def test_kept_attempts_past_the_cutoff_are_marked_archived(world):
    retention_purge(before=CUTOFF, batch_size=2)

    old = Attempt.objects.filter(started_at__lt=CUTOFF)
    assert old.count() == 7
    assert all(attempt.archived for attempt in old)
    assert not Attempt.objects.filter(started_at__gte=CUTOFF, archived=True).exists()


@pytest.mark.pgbouncer
def test_purge_works_in_batches_of_the_given_size(world):
    batches: list[tuple[str, int]] = []

    with CaptureQueriesContext(connection) as queries:
        retention_purge(before=CUTOFF, batch_size=2, on_batch=lambda *batch: batches.append(batch))

    assert [count for category, count in batches if category == "deliveries"] == [2, 2, 2, 2]
    # Stored by day, a day's kept attempts are archived in one statement, as the day goes.
    blanked = [7] if attempts_partitioned() else [2, 2, 2, 1]
    assert [count for category, count in batches if category == "attempts_blanked"] == blanked
    statements = [query["sql"] for query in queries.captured_queries]
    table = Delivery._meta.db_table
    assert sum(sql.startswith(f'DELETE FROM "{table}"') for sql in statements) == 4
    walks = [sql for sql in statements if re.search(r"\"id\" > \d+\)? ORDER BY", sql)]
    assert len(walks) > 10
    assert all(sql.endswith(" LIMIT 2") for sql in walks)


def test_a_purge_past_its_deadline_stops_and_the_next_run_goes_on(world):
    before = database_snapshot()

    stopped = retention_purge(before=CUTOFF, batch_size=2, deadline=time.monotonic() - 1)

    assert stopped.complete is False
    assert dataclasses.astuple(stopped)[:-1] == (0,) * 7
    assert database_snapshot() == before
    finished = retention_purge(before=CUTOFF, batch_size=2, deadline=time.monotonic() + 60)
    assert finished.complete is True
    assert finished.deliveries == 8


def test_a_delivery_replayed_while_the_purge_runs_is_kept(world, monkeypatch):
    replayed = world.old_succeeded[2]
    walk = retention._walk

    def walk_then_replay(rows, **kwargs):
        for batch in walk(rows, **kwargs):
            if batch.first_id <= replayed.id <= batch.last_id:  # read, then replayed
                deliveries_replay(deliveries=Delivery.objects.filter(id=replayed.id))
            yield batch

    monkeypatch.setattr(retention, "_walk", walk_then_replay)
    counts = retention_purge(before=CUTOFF, batch_size=2)

    replayed.refresh_from_db()
    assert replayed.status == PENDING
    assert replayed.attempts.count() == 2
    assert Event.objects.filter(id=replayed.event_id).exists()
    assert counts.deliveries == 7


def test_blanking_goes_on_from_where_the_last_run_stopped(world, plain_attempts):
    retention_purge(before=CUTOFF, batch_size=2)
    # Written behind the purge's back, below the position it remembers: not read again.
    Attempt.objects.filter(delivery=world.old_failed).update(response_body="kept")

    with CaptureQueriesContext(connection) as queries:
        counts = retention_purge(before=NOW, batch_size=2)

    assert counts.attempts_blanked == 2  # the new failed delivery's, now older than the cutoff
    assert world.new_failed.attempts.exclude(response_body="").count() == 0
    assert set(
        Attempt.objects.filter(delivery=world.old_failed).values_list("response_body", flat=True)
    ) == {"kept"}
    table = Attempt._meta.db_table
    walks = [q["sql"] for q in queries.captured_queries if f'"{table}"."id" > ' in q["sql"]]
    assert walks
    assert not any(f'"{table}"."id" > 0 ' in sql for sql in walks)


def test_blanking_starts_over_when_the_remembered_attempt_is_gone(world, plain_attempts):
    retention_purge(before=CUTOFF, batch_size=2)
    Attempt.objects.filter(delivery=world.old_failed).update(response_body="again")
    # The last attempt of the last batch read whole, whose id the purge remembers.
    world.old_pending.attempts.get().delete()

    counts = retention_purge(before=CUTOFF, batch_size=2)

    assert counts.attempts_blanked == 3
    assert not Attempt.objects.filter(response_body="again").exists()


def test_events_left_without_deliveries_elsewhere_go_when_the_daily_walk_starts_over(world):
    retention_purge(before=CUTOFF, batch_size=2)
    # Its endpoint deleted, say: an old dead letter's event is left without deliveries, below
    # the position the event walk remembers.
    Delivery.objects.filter(id=world.old_failed.id).delete()
    assert retention_purge(before=CUTOFF, batch_size=2).events == 0

    retention.CHECKED_EVENTS.forget()  # as when it expires, a day later
    assert retention.CHECKED_EVENTS.timeout == 24 * 3600

    assert retention_purge(before=CUTOFF, batch_size=2).events == 1
    assert not Event.objects.filter(id=world.old_failed.event_id).exists()


def test_the_next_run_walks_events_from_the_last_one_kept(endpoint):
    kept = delivery_at(endpoint, OLD, FAILED).event
    orphan = event_at(endpoint, OLD)  # the last of a batch, deleted by it
    event_at(endpoint, RECENT)
    retention_purge(before=CUTOFF, batch_size=2)
    assert not Event.objects.filter(id=orphan.id).exists()

    with CaptureQueriesContext(connection) as queries:
        retention_purge(before=CUTOFF, batch_size=2)

    table = Event._meta.db_table
    walks = [q["sql"] for q in queries.captured_queries if f'"{table}"."id" > ' in q["sql"]]
    assert walks
    assert all(f'"{table}"."id" > {kept.id} ' in sql for sql in walks)


def test_failed_deliveries_stay_until_purged_explicitly(world):
    retention_purge(before=CUTOFF, batch_size=2)
    retention_purge(before=CUTOFF, batch_size=2)
    assert Delivery.objects.filter(status=FAILED).count() == 3

    counts = dead_letters_purge(before=CUTOFF, batch_size=1)

    assert ids(Delivery.objects.filter(status=FAILED)) == {world.new_failed.id}
    assert ids(Delivery.objects.filter(status=PENDING)) == {world.old_pending.id}
    assert (counts.deliveries, counts.attempts, counts.events) == (2, 5, 2)
    assert not Event.objects.filter(id__in=[world.shared_event.id, world.old_failed.event_id])


# --- the command ------------------------------------------------------------------------------


def purge_output(*args: str) -> str:
    stdout = io.StringIO()
    with time_machine.travel(NOW, tick=True):
        call_command("purge", *args, stdout=stdout, stderr=io.StringIO())
    return stdout.getvalue()


def reported(output: str) -> dict[str, int]:
    return {
        label.strip(): int(count)
        for label, count in re.findall(r"^  (\D+?)\s+(\d+)  ", output, flags=re.MULTILINE)
    }


def test_dry_run_reports_what_the_purge_then_deletes_and_deletes_nothing(world, settings):
    settings.WEBHOOKS_RETENTION_DAYS = 30
    before = database_snapshot()

    dry = purge_output("--dry-run", "--batch-size", "2")

    assert database_snapshot() == before
    assert "would be deleted" in dry
    real = purge_output("--batch-size", "2")
    assert reported(dry) == reported(real)
    assert reported(real) == {
        "succeeded deliveries": 8,
        "attempts": 13,
        "events": 7,
        "attempts' captured headers and bodies": 7,
        "test-inbox requests": 1,
        "finished replay jobs": 1,
    }
    assert reported(purge_output("--dry-run")) == dict.fromkeys(reported(real), 0)


def test_command_purges_failed_deliveries_only_with_failed_and_before(world):
    dry = purge_output("--failed", "--before", "30", "--dry-run")
    assert Delivery.objects.filter(status=FAILED).count() == 3

    output = purge_output("--failed", "--before", CUTOFF.date().isoformat())

    assert (
        reported(dry)
        == reported(output)
        == {
            "failed deliveries": 2,
            "attempts": 5,
            "events": 1,  # the shared event keeps its old succeeded delivery
        }
    )
    assert ids(Delivery.objects.filter(status=FAILED)) == {world.new_failed.id}
    assert Delivery.objects.filter(status=SUCCEEDED).count() == 8 + 1 + 1


def test_zero_days_turns_purging_off(world, settings):
    settings.WEBHOOKS_RETENTION_DAYS = 0
    before = database_snapshot()

    with time_machine.travel(NOW, tick=True):
        assert purge_expired() is None
    output = purge_output()

    assert "Retention is off" in output
    assert database_snapshot() == before


def test_days_option_overrides_the_setting(world, settings):
    settings.WEBHOOKS_RETENTION_DAYS = 0

    output = purge_output("--days", "60")

    assert reported(output)["succeeded deliveries"] == 0
    assert reported(purge_output("--days", "35"))["succeeded deliveries"] == 8


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--days", "0"], "--days must be at least 1"),
        (["--days", "-3"], "--days must be at least 1"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--failed"], "--failed needs --before"),
        (["--before", "30"], "--before goes with --failed"),
        (["--failed", "--before", "30", "--days", "3"], "--failed takes --before, not --days"),
        (["--failed", "--before", "last tuesday"], "--before must be a number of days"),
        (["--failed", "--before", "2026-13-45"], "--before must be a number of days"),
        (["--failed", "--before", "2027-01-01"], "is in the future"),
        (["--days", "many"], "invalid int value"),
    ],
)
def test_command_refuses_bad_arguments_with_a_clear_message(args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        purge_output(*args)


def test_a_huge_number_of_days_purges_nothing(world):
    assert reported(purge_output("--days", "999999999"))["succeeded deliveries"] == 0
    assert reported(purge_output("--failed", "--before", "99999999999", "--dry-run")) == {
        "failed deliveries": 0,
        "attempts": 0,
        "events": 0,
    }


# --- the beat task ----------------------------------------------------------------------------


def test_purge_task_is_on_the_beat_schedule(settings):
    from config.celery import app

    app.finalize(auto=True)
    entry = app.conf.beat_schedule["purge expired data"]

    assert entry["task"] == "deliveries.tasks.purge_expired"
    assert entry["schedule"] == settings.WEBHOOKS_RETENTION_INTERVAL == 3600.0


@pytest.mark.pgbouncer
def test_purge_task_purges_what_is_older_than_the_retention(world, settings):
    settings.WEBHOOKS_RETENTION_DAYS = 30
    settings.WEBHOOKS_RETENTION_BATCH_SIZE = 2

    with time_machine.travel(NOW, tick=True):
        counts = purge_expired()

    assert counts["deliveries"] == 8
    assert counts["complete"] is True
    assert Delivery.objects.filter(status=SUCCEEDED).count() == 2
    assert Delivery.objects.filter(status=FAILED).count() == 3


def test_the_hourly_counts_of_hours_before_the_cutoff_go_and_a_dry_run_counts_them(world):
    endpoint = EndpointFactory(tenant=TenantFactory(slug="counted"))
    for hour in (
        CUTOFF - timedelta(hours=3),
        CUTOFF - timedelta(hours=1),
        CUTOFF,
        CUTOFF + timedelta(hours=5),
    ):
        HourlyStat.objects.create(endpoint=endpoint, hour=hour, succeeded=1, status_2xx=1)

    assert retention_purge(before=CUTOFF, batch_size=1, dry_run=True).hourly_stats == 2
    assert HourlyStat.objects.count() == 4
    counts = retention_purge(before=CUTOFF, batch_size=1)

    assert counts.hourly_stats == 2
    assert sorted(HourlyStat.objects.values_list("hour", flat=True)) == [
        CUTOFF,
        CUTOFF + timedelta(hours=5),
    ]
