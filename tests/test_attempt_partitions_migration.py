"""An installation upgrading to attempts stored by day: every attempt moves into its day.

The database is taken back to the migration before (a plain table of attempts, with a foreign
key), filled through that schema's models with attempts over several days, then migrated
forward: every row is there, column by column, each in the partition of its day; the ids go on
from the old sequence; new attempts go in. Migrated back, the rows return to a plain table.
"""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from deliveries.attempt_partitions import (
    AttemptPartition,
    attempt_partitions,
    attempts_partitioned,
)
from deliveries.bulk import attempts_insert
from deliveries.models import Attempt, Delivery

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

BEFORE_PARTITIONS = [("deliveries", "0018_wakeflag")]
PARTITIONED = [("deliveries", "0020_attempt_partitions")]
UNPARTITIONED = [("deliveries", "0019_attempt_archived_without_constraint")]
TABLE = Attempt._meta.db_table
COLUMNS = (
    "id", "delivery_id", "number", "trigger", "started_at", "duration_ms", "url",
    "request_headers", "response_status", "response_headers", "response_body", "error_kind",
    "error_message",
)  # fmt: skip
NOW = timezone.now().astimezone(UTC)
STARTS = [NOW - timedelta(days=40), NOW - timedelta(days=2, hours=3), NOW - timedelta(days=1), NOW]


def _migrate(targets: list[tuple[str, str]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection)  # a fresh loader sees what was applied


def _rows() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT {", ".join(COLUMNS)} FROM "{TABLE}" ORDER BY id')  # noqa: S608
        return cursor.fetchall()


def _stored_in() -> dict[int, str]:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT id, tableoid::regclass::text FROM "{TABLE}"')  # noqa: S608
        return dict(cursor.fetchall())


def _sequence_last_value() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [TABLE])
        cursor.execute(f"SELECT last_value FROM {cursor.fetchone()[0]}")  # noqa: S608
        return cursor.fetchone()[0]


def _fill(apps) -> None:  # noqa: ANN001
    """Deliveries with attempts on four days, through the old schema's models."""
    get = apps.get_model
    tenant = get("subscriptions", "Tenant").objects.create(slug="upgrading", name="Upgrading")
    event_type = get("subscriptions", "EventType").objects.create(name="order.paid")
    endpoint = get("subscriptions", "Endpoint").objects.create(
        tenant=tenant, url="https://receiver.example.com/hooks", secret="whsec_" + "A" * 43 + "="
    )
    Attempt = get("deliveries", "Attempt")  # noqa: N806
    for n, start in enumerate(STARTS):
        event = get("webhooks", "Event").objects.create(
            public_id=f"msg_upgrade{n}", tenant=tenant, event_type=event_type, payload={"n": n}
        )
        delivery = get("deliveries", "Delivery").objects.create(
            event=event, endpoint=endpoint, status="failed" if n == 0 else "succeeded",
            attempt_count=2, created_at=start, finished_at=start + timedelta(minutes=1),
        )  # fmt: skip
        for number in (1, 2):
            Attempt.objects.create(
                delivery=delivery, number=number, trigger="scheduled",
                started_at=start + timedelta(seconds=number), duration_ms=10.0 * number,
                url=endpoint.url, request_headers={"webhook-id": event.public_id, "n": n},
                response_status=503 if number == 1 else 200,
                response_headers={"content-type": "text/plain"}, response_body=f"body {n}",
                error_kind="http_status" if number == 1 else "",
                error_message="HTTP 503" if number == 1 else "",
            )  # fmt: skip
    # The newest attempt is gone before the upgrade: the ids must still go on past it.
    Attempt.objects.order_by("-id").first().delete()


def test_an_upgrade_moves_every_attempt_into_its_day_and_the_ids_go_on():
    try:
        old = _migrate(BEFORE_PARTITIONS)
        # Every other app as it is now: only the attempts' migrations are undone.
        others = [node for node in old.loader.graph.leaf_nodes() if node[0] != "deliveries"]
        _fill(old.loader.project_state(others + BEFORE_PARTITIONS).apps)
        before, last_id = _rows(), _sequence_last_value()
        assert len(before) == 2 * len(STARTS) - 1

        _migrate(PARTITIONED)

        assert attempts_partitioned()
        assert _rows() == before
        stored_in = _stored_in()
        partitions = attempt_partitions()
        for row in before:
            day = row[4].astimezone(UTC).date()
            (partition,) = [p for p in partitions if p.covers(day)]
            assert stored_in[row[0]] == partition.name
        # What is older than the retention window (30 days here) shares one partition, which
        # the first purge drops; then a day each, without a gap, to the week ahead.
        today = NOW.date()
        assert partitions[0] == AttemptPartition(STARTS[0].date(), today - timedelta(days=30))
        assert [(p.first_day, p.end_day) for p in partitions[1:]] == [
            (today + timedelta(days=n), today + timedelta(days=n + 1)) for n in range(-30, 8)
        ]
        delivery = Delivery.objects.order_by("id").last()
        added = Attempt.objects.create(
            delivery=delivery, number=3, started_at=timezone.now(), duration_ms=1.0, url="x"
        )
        assert added.id == last_id + 1
        attempts_insert([Attempt(delivery=delivery, number=4, started_at=timezone.now(),
                                 duration_ms=1.0, url="x")])  # fmt: skip
        assert Attempt.objects.filter(delivery=delivery, number=4).exists()
        after = _rows()

        _migrate(UNPARTITIONED)

        assert not attempts_partitioned()
        assert _rows() == after
        assert set(_stored_in().values()) == {TABLE}
        assert (
            Attempt.objects.create(
                delivery=delivery, number=5, started_at=timezone.now(), duration_ms=1.0, url="x"
            ).id
            == max(row[0] for row in after) + 1
        )
    finally:
        latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
        _migrate([node for node in latest if node[0] == "deliveries"])
    assert attempts_partitioned()
