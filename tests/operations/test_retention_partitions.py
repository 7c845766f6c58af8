"""Retention of attempts stored in partitions by day (PostgreSQL): partitions dropped whole, the
attempts of kept deliveries archived first. The behaviour shared with a plain table is in
test_retention.py, which runs on both."""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deliveries import attempt_partitions as partitioning
from deliveries.attempt_partitions import (
    AttemptPartition,
    attempt_partitions,
    attempt_partitions_ensure,
)
from deliveries.models import Attempt, Delivery
from operations import retention
from operations.retention import dead_letters_purge, retention_purge
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks.models import Event

pytestmark = [pytest.mark.services, pytest.mark.django_db]

TABLE = Attempt._meta.db_table
NOW = timezone.now().astimezone(UTC)
CUTOFF = NOW - timedelta(days=30)
OLD = (NOW - timedelta(days=40)).replace(hour=9, minute=0, second=0, microsecond=0)
OLD_DAY = AttemptPartition(OLD.date(), OLD.date() + timedelta(days=1))
RECENT = NOW - timedelta(hours=1)
SUCCEEDED, FAILED, PENDING = (
    Delivery.Status.SUCCEEDED,
    Delivery.Status.FAILED,
    Delivery.Status.PENDING,
)
CAPTURE = {
    "request_headers": {"webhook-id": "msg_d", "x-note": "n" * 50},
    "response_headers": {"content-type": "text/plain"},
    "response_body": "receiver said no" * 10,
}


@pytest.fixture
def endpoint():
    return EndpointFactory(tenant=TenantFactory())


def delivery_with_attempts(
    endpoint, status: str, starts: list[datetime], finished_at: datetime | None = None
) -> Delivery:
    event = Event.objects.create(
        tenant=endpoint.tenant, event_type=EventTypeFactory(), payload={}, created_at=starts[0]
    )
    delivery = Delivery.objects.create(
        event=event, endpoint=endpoint, status=status, attempt_count=len(starts),
        created_at=starts[0],
        finished_at=None if status == PENDING else finished_at or starts[-1],
    )  # fmt: skip
    Attempt.objects.bulk_create(
        Attempt(
            delivery=delivery, number=number, started_at=start, duration_ms=4.0,
            url=endpoint.url, response_status=200 if status == SUCCEEDED else 503,
            error_kind="" if status == SUCCEEDED else Attempt.ErrorKind.HTTP_STATUS,
            error_message="" if status == SUCCEEDED else "HTTP 503", **CAPTURE,
        )
        for number, start in enumerate(starts, start=1)
    )  # fmt: skip
    return delivery


def stored_in(attempt: Attempt) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT tableoid::regclass::text FROM "{TABLE}" WHERE id = %s', [attempt.id]
        )
        return cursor.fetchone()[0]


def timeline(delivery: Delivery) -> list[tuple]:
    return list(
        Attempt.objects.filter(delivery=delivery)
        .order_by("number")
        .values_list("number", "started_at", "response_status", "error_kind", "error_message")
    )


@contextlib.contextmanager
def attempts_read_elsewhere() -> Iterator[None]:
    """Another connection in a transaction that reads attempts, as a slow query would: it holds
    a lock on the days' parent until it ends. (Only that lock: the day this test's transaction
    has just created is locked until it ends, and reading it would wait for that.)"""
    settings = connection.settings_dict
    with psycopg.connect(
        dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"],
        port=settings["PORT"] or 5432, password=settings["PASSWORD"] or None,
    ) as reader:  # fmt: skip
        reader.execute("SET lock_timeout = '5s'")  # never waits on this test for good
        reader.execute(f'LOCK TABLE ONLY "{TABLE}_live" IN ACCESS SHARE MODE')
        yield
        reader.rollback()


@pytest.fixture
def old_day(endpoint):
    """A day 40 days ago: deliveries retention deletes, and ones it keeps."""
    minute = timedelta(minutes=1)
    day = types.SimpleNamespace(
        doomed=[delivery_with_attempts(endpoint, SUCCEEDED, [OLD, OLD + minute]) for _ in range(3)],
        dead=delivery_with_attempts(endpoint, FAILED, [OLD, OLD + minute, OLD + 2 * minute]),
        pending=delivery_with_attempts(endpoint, PENDING, [OLD + 3 * minute]),
        # Dead-lettered that day, replayed an hour ago and delivered: kept, with its history.
        replayed=delivery_with_attempts(endpoint, SUCCEEDED, [OLD, RECENT], finished_at=RECENT),
        recent=delivery_with_attempts(endpoint, SUCCEEDED, [RECENT]),
    )
    # Its delivery deleted by hand, without Django: the attempt is left without one.
    day.orphan = delivery_with_attempts(endpoint, SUCCEEDED, [OLD + 4 * minute])
    with connection.cursor() as cursor:
        cursor.execute(f'DELETE FROM "{Delivery._meta.db_table}" WHERE id = %s', [day.orphan.id])
    attempt_partitions_ensure()  # the day's attempts leave the default partition for their day
    assert {stored_in(a) for a in Attempt.objects.filter(started_at__lt=CUTOFF)} == {OLD_DAY.name}
    return day


def test_a_past_day_is_dropped_whole_and_the_attempts_kept_move_to_the_archive(old_day):
    kept = [old_day.dead, old_day.pending, old_day.replayed]
    timelines = {d.id: timeline(d) for d in kept}

    with CaptureQueriesContext(connection) as queries:
        counts = retention_purge(before=CUTOFF, batch_size=2)

    assert OLD_DAY not in attempt_partitions()
    for delivery in kept:
        assert timeline(delivery) == timelines[delivery.id]
    archived = Attempt.objects.filter(started_at__lt=CUTOFF)
    assert archived.count() == 3 + 1 + 1
    for attempt in archived:
        assert stored_in(attempt) == f"{TABLE}_archive"
        assert attempt.archived
        assert (attempt.request_headers, attempt.response_headers, attempt.response_body) == (
            {},
            {},
            "",
        )
    recent = Attempt.objects.get(delivery=old_day.recent)
    assert (recent.archived, recent.response_body) == (False, CAPTURE["response_body"])
    assert not Attempt.objects.filter(delivery_id=old_day.orphan.id).exists()
    assert not Delivery.objects.filter(id__in=[d.id for d in old_day.doomed]).exists()
    # 3 doomed deliveries' 6 attempts and the orphan went with the day, none of them one by one.
    assert (counts.attempts, counts.attempts_blanked, counts.complete) == (7, 5, True)
    statements = [query["sql"] for query in queries.captured_queries]
    assert f'DROP TABLE "{OLD_DAY.name}"' in statements
    deletes = [sql for sql in statements if sql.startswith(f'DELETE FROM "{TABLE}"')]
    assert all('"archived"' in sql for sql in deletes)


def test_kept_attempts_are_blanked_only_once_their_whole_day_is_past_the_cutoff(endpoint):
    cutoff = NOW.replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=30)
    morning = delivery_with_attempts(endpoint, FAILED, [cutoff - timedelta(hours=2)])

    counts = retention_purge(before=cutoff, batch_size=10)

    attempt = Attempt.objects.get(delivery=morning)
    assert (attempt.archived, attempt.response_body) == (False, CAPTURE["response_body"])
    assert counts.attempts_blanked == 0
    retention_purge(before=cutoff + timedelta(hours=12), batch_size=10)  # the day is over
    attempt.refresh_from_db()
    assert (attempt.archived, attempt.response_body) == (True, "")


def test_a_day_in_use_is_left_whole_for_the_next_run(old_day, monkeypatch):
    monkeypatch.setattr(partitioning, "LOCK_TIMEOUT", "200ms")
    # By id alone: the default order joins the delivery, and hides attempts without one.
    stored = Attempt.objects.order_by("id").values_list("id", "archived", "response_body")
    before = list(stored)

    with attempts_read_elsewhere():
        counts = retention_purge(before=CUTOFF, batch_size=2)

    assert (counts.attempts, counts.attempts_blanked, counts.complete) == (0, 0, False)
    assert OLD_DAY in attempt_partitions()
    # Its doomed deliveries went; their attempts wait for the day, which takes them next run.
    assert list(stored) == before
    again = retention_purge(before=CUTOFF, batch_size=2)
    assert (again.attempts, again.attempts_blanked, again.complete) == (7, 5, True)


def test_dead_letters_purged_later_take_their_archived_attempts_with_them(old_day):
    retention_purge(before=CUTOFF, batch_size=2)
    assert Attempt.objects.filter(delivery=old_day.dead, archived=True).count() == 3

    counts = dead_letters_purge(before=NOW, batch_size=10)

    assert (counts.deliveries, counts.attempts) == (1, 3)
    assert not Attempt.objects.filter(delivery_id=old_day.dead.id).exists()


def test_an_archived_attempt_goes_with_its_delivery_and_the_others_with_their_day(old_day):
    retention_purge(before=CUTOFF, batch_size=2)
    replayed = old_day.replayed
    assert Attempt.objects.filter(delivery=replayed, archived=True).count() == 1

    counts = retention_purge(before=NOW, batch_size=2)  # the replay is past the cutoff too

    assert not Delivery.objects.filter(id=replayed.id).exists()
    assert not Attempt.objects.filter(delivery_id=replayed.id, archived=True).exists()
    assert counts.attempts == 1  # today is not over: its replay's attempt waits for its day
    today = AttemptPartition(RECENT.date(), RECENT.date() + timedelta(days=1))
    assert Attempt.objects.filter(delivery_id=replayed.id).get().started_at == RECENT

    retention_purge(before=today.upper, batch_size=2)

    assert not Attempt.objects.filter(delivery_id=replayed.id).exists()


def test_a_backlog_of_deliveries_to_delete_leaves_time_for_the_days(old_day, monkeypatch):
    clock = types.SimpleNamespace(now=1000.0)
    monkeypatch.setattr(retention, "time", types.SimpleNamespace(monotonic=lambda: clock.now))
    deleting = retention._deliveries_delete

    def slow_delete(doomed, attempts_partitioned=False):
        clock.now += 1.0  # each batch of deliveries takes a second
        return deleting(doomed, attempts_partitioned)

    monkeypatch.setattr(retention, "_deliveries_delete", slow_delete)
    counts = retention_purge(before=CUTOFF, batch_size=1, deadline=clock.now + 3.0)

    # Two of three seconds on deliveries, one batch each; then the day went all the same.
    assert counts.deliveries == 2
    assert OLD_DAY not in attempt_partitions()
    assert counts.complete is False
    assert Delivery.objects.filter(id__in=[d.id for d in old_day.doomed]).count() == 1
