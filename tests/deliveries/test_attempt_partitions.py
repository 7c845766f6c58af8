"""Attempts on PostgreSQL: a partition a day, created ahead, and never an insert refused.

Each test reads where a row is stored (its partition) from PostgreSQL itself.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError, connection
from django.utils import timezone

from deliveries import attempt_partitions as partitioning
from deliveries.attempt_partitions import (
    DAYS_AHEAD,
    AttemptPartition,
    attempt_partitions,
    attempt_partitions_ensure,
)
from deliveries.bulk import attempts_insert
from deliveries.models import Attempt, Delivery
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks.models import Event

pytestmark = [pytest.mark.services, pytest.mark.django_db]

TABLE = Attempt._meta.db_table
FAR = datetime(2031, 3, 14, 15, 9, tzinfo=UTC)  # no partition is made this far ahead


@pytest.fixture(autouse=True)
def fresh_horizon(monkeypatch):
    """Each test starts as a new worker process: no day known to exist yet."""
    monkeypatch.setattr(partitioning, "_horizon", partitioning._Horizon())


@pytest.fixture
def delivery() -> Delivery:
    endpoint = EndpointFactory(tenant=TenantFactory())
    event = Event.objects.create(
        tenant=endpoint.tenant, event_type=EventTypeFactory(), payload={"n": 1}
    )
    return Delivery.objects.create(event=event, endpoint=endpoint)


def new_attempt(delivery: Delivery, started_at: datetime, number: int = 1) -> Attempt:
    return Attempt(
        delivery=delivery, number=number, started_at=started_at, duration_ms=3.5,
        url=delivery.endpoint.url, request_headers={"webhook-id": "msg_p"},
        response_status=200, response_headers={"content-type": "text/plain"},
        response_body="ok",
    )  # fmt: skip


def stored_in(attempt_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT tableoid::regclass::text FROM "{TABLE}" WHERE id = %s', [attempt_id]
        )
        return cursor.fetchone()[0]


def days() -> set[date]:
    """Every day some partition covers."""
    return {
        partition.first_day + timedelta(days=n)
        for partition in attempt_partitions()
        for n in range((partition.end_day - partition.first_day).days)
    }


def one_day(day: date) -> AttemptPartition:
    return AttemptPartition(day, day + timedelta(days=1))


@contextlib.contextmanager
def attempts_read_elsewhere() -> Iterator[None]:
    """Another connection in the middle of a transaction that read attempts: it holds a lock on
    every partition until it ends, as a slow dashboard query would."""
    settings = connection.settings_dict
    with psycopg.connect(
        dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"],
        port=settings["PORT"] or 5432, password=settings["PASSWORD"] or None,
    ) as reader:  # fmt: skip
        reader.execute("SET lock_timeout = '5s'")  # never waits on this test for good
        reader.execute(f'SELECT count(*) FROM "{TABLE}"')
        yield
        reader.rollback()


def test_the_migration_leaves_today_and_the_week_ahead_partitioned():
    today = timezone.now().astimezone(UTC).date()

    assert {today + timedelta(days=n) for n in range(DAYS_AHEAD + 1)} <= days()


def test_a_stored_attempt_lands_in_its_own_day(delivery):
    now = timezone.now()
    attempts_insert([new_attempt(delivery, now)])

    stored = Attempt.objects.get(delivery=delivery)
    assert stored_in(stored.id) == one_day(now.astimezone(UTC).date()).name
    assert Attempt.objects.get(id=stored.id).response_body == "ok"  # read back by id alone


def test_a_worker_storing_past_the_last_day_creates_that_day_and_the_week_after(delivery):
    later = FAR
    assert later.date() not in days()

    attempts_insert([new_attempt(delivery, later)])

    assert stored_in(Attempt.objects.get(delivery=delivery).id) == one_day(later.date()).name
    assert {later.date() + timedelta(days=n) for n in range(DAYS_AHEAD + 1)} <= days()


def test_an_attempt_without_its_day_waits_in_the_default_partition_then_moves_in(delivery):
    attempt = new_attempt(delivery, FAR)
    attempt.save()  # not through the worker's path: nothing creates its day
    assert stored_in(attempt.id) == f"{TABLE}_default"

    created = attempt_partitions_ensure()

    assert one_day(FAR.date()) in created
    assert stored_in(attempt.id) == one_day(FAR.date()).name
    moved = Attempt.objects.get(id=attempt.id)
    assert (moved.started_at, moved.request_headers, moved.response_body) == (
        FAR,
        {"webhook-id": "msg_p"},
        "ok",
    )
    assert attempt_partitions_ensure() == []  # nothing left to do


def test_creating_days_gives_up_on_busy_attempts_and_changes_nothing(delivery):
    attempt = new_attempt(delivery, FAR)
    attempt.save()

    with attempts_read_elsewhere():
        started = time.monotonic()
        with pytest.raises(OperationalError):
            attempt_partitions_ensure()
        waited = time.monotonic() - started

    assert 1.5 < waited < 10  # LOCK_TIMEOUT, not for as long as the reader reads
    assert FAR.date() not in days()
    assert stored_in(attempt.id) == f"{TABLE}_default"
    assert len(attempt_partitions_ensure(now=FAR)) == DAYS_AHEAD + 1  # free again: created


def test_a_worker_stores_its_attempts_even_when_days_cannot_be_created(delivery, monkeypatch):
    monkeypatch.setattr(partitioning, "LOCK_TIMEOUT", "1s")
    with attempts_read_elsewhere():
        attempts_insert([new_attempt(delivery, FAR)])
        # It does not try again at once: the next batch does not wait on the lock either.
        started = time.monotonic()
        attempts_insert([new_attempt(delivery, FAR + timedelta(seconds=1), number=2)])
        assert time.monotonic() - started < 0.8  # well under the lock's 1 s

    stored = Attempt.objects.filter(delivery=delivery)
    assert {stored_in(attempt.id) for attempt in stored} == {f"{TABLE}_default"}
    assert FAR.date() not in days()


def test_a_deleted_delivery_takes_its_attempts_from_every_partition(delivery):
    Attempt.objects.bulk_create(
        [new_attempt(delivery, timezone.now()), new_attempt(delivery, FAR, number=2)]
    )
    archived = new_attempt(delivery, timezone.now() - timedelta(days=90), number=3)
    archived.archived = True
    archived.save()
    assert len({stored_in(a.id) for a in Attempt.objects.filter(delivery=delivery)}) == 3

    delivery.endpoint.delete()

    assert not Attempt.objects.exists()


def test_partitions_are_created_on_the_beat_schedule():
    from config.celery import ATTEMPT_PARTITIONS_INTERVAL, app

    app.finalize(auto=True)
    entry = app.conf.beat_schedule["create attempt partitions"]

    assert entry["task"] == "deliveries.tasks.create_attempt_partitions"
    assert entry["schedule"] == ATTEMPT_PARTITIONS_INTERVAL


def test_the_beat_task_creates_the_missing_days(delivery):
    from deliveries.tasks import create_attempt_partitions

    today = timezone.now().astimezone(UTC).date()
    coming = one_day(today + timedelta(days=DAYS_AHEAD))
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE "{coming.name}"')

    assert create_attempt_partitions() == [coming.name]
    assert coming in attempt_partitions()


def test_the_command_creates_days_from_a_date_and_lists_them():
    output = io.StringIO()
    since = timezone.now().astimezone(UTC).date() - timedelta(days=3)

    call_command("attempt_partitions", "--since", since.isoformat(), stdout=output)

    assert {since + timedelta(days=n) for n in range(3)} <= days()
    assert "Created 3 partition(s)." in output.getvalue()
    assert one_day(since).name in output.getvalue()
    assert f"{TABLE}_archive" in output.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "2026-13-01"], "--since must be a date"),
        (["--since", "yesterday"], "--since must be a date"),
        (["--since", "1900-01-01"], "--since may go back at most"),
        (["--days-ahead", "-1"], "--days-ahead must be from 0 to"),
        (["--days-ahead", "100000"], "--days-ahead must be from 0 to"),
    ],
)
def test_the_command_refuses_bad_arguments_and_creates_nothing(args, message):
    before = days()

    with pytest.raises(CommandError, match=message):
        call_command("attempt_partitions", *args, stdout=io.StringIO())

    assert days() == before


def test_with_a_long_retention_a_partition_spans_several_days(delivery, settings):
    settings.WEBHOOKS_RETENTION_DAYS = 365
    attempt = new_attempt(delivery, FAR)
    attempt.save()

    (created, *_) = attempt_partitions_ensure()

    assert created == AttemptPartition(FAR.date(), FAR.date() + timedelta(days=12))
    assert stored_in(attempt.id) == created.name
