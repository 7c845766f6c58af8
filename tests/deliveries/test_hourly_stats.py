"""Hourly counts of attempts (`HourlyStat`): kept by the workers as they record, in the same
transaction, and rebuilt from the attempts for an upgrade. Real deliveries to a real receiver."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection, transaction

from deliveries.batch import deliver_due_batch
from deliveries.claims import Outcome
from deliveries.hourly_stats import (
    Tally,
    bucket_middle_ms,
    hourly_stats_add,
    hourly_stats_rebuild,
    latency_bucket,
)
from deliveries.models import Attempt, Delivery, HourlyStat
from deliveries.retry import Action, Decision
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 11, 2, 9, 59, 58, tzinfo=UTC)


@pytest.fixture(autouse=True)
def one_retry(settings):
    settings.WEBHOOKS_RETRY_SCHEDULE = (1.0,)


@pytest.fixture
def tenant():
    EventTypeFactory(name="order.paid")
    return TenantFactory()


def deliver_at(moment: datetime) -> int:
    with time_machine.travel(moment, tick=False):
        return deliver_due_batch(limit=50)


def rows() -> dict[tuple[int, datetime], dict]:
    return {
        (row.endpoint_id, row.hour): {
            "succeeded": row.succeeded,
            "dead": row.dead,
            "2xx": row.status_2xx,
            "5xx": row.status_5xx,
            "none": row.no_response,
            "latency": row.latency,
        }  # fmt: skip
        for row in HourlyStat.objects.all()
    }


def test_recorded_attempts_are_counted_by_endpoint_and_hour(tenant, receiver):
    healthy = EndpointFactory(tenant=tenant, url=receiver.url("/ok"))
    flaky = EndpointFactory(tenant=tenant, url=receiver.url("/flaky"))
    down = EndpointFactory(tenant=tenant)  # nothing listens there: refused
    receiver.script("/flaky", [503, 503, 200])
    with time_machine.travel(T0, tick=False):
        for n in range(3):
            send_event(tenant, "order.paid", {"n": n})
    assert deliver_at(T0) == 9
    # The retries fall in the next hour; the first failures of `flaky` and `down` gave up or not
    # by the schedule: one retry each.
    assert deliver_at(T0 + timedelta(seconds=5)) == 5

    ten, eleven = datetime(2026, 11, 2, 9, tzinfo=UTC), datetime(2026, 11, 2, 10, tzinfo=UTC)
    counted = rows()
    assert counted[(healthy.id, ten)] | {"latency": None} == {
        "succeeded": 3, "dead": 0, "2xx": 3, "5xx": 0, "none": 0, "latency": None,
    }  # fmt: skip
    assert counted[(flaky.id, ten)]["5xx"] == 2
    assert counted[(flaky.id, ten)]["succeeded"] == 1
    # The two that failed got their one retry in the next hour: a 200 (the script's last) and
    # a 200 (the receiver's default), so nothing died.
    assert counted[(flaky.id, eleven)] | {"latency": None} == {
        "succeeded": 2, "dead": 0, "2xx": 2, "5xx": 0, "none": 0, "latency": None,
    }  # fmt: skip
    assert counted[(down.id, ten)]["none"] == 3
    assert counted[(down.id, ten)]["dead"] == 0
    assert counted[(down.id, eleven)]["none"] == 3
    assert counted[(down.id, eleven)]["dead"] == 3
    assert Delivery.objects.filter(endpoint=down, status=Delivery.Status.FAILED).count() == 3
    # Every attempt is in exactly one bucket of its endpoint's hour.
    for (endpoint_id, hour), row in counted.items():
        stored = Attempt.objects.filter(
            delivery__endpoint_id=endpoint_id,
            started_at__gte=hour,
            started_at__lt=hour + timedelta(hours=1),
        )
        assert sum(row["latency"].values()) == stored.count()


def test_a_rebuild_from_the_attempts_gives_the_counts_the_workers_kept(tenant, receiver):
    for n in range(3):
        EndpointFactory(tenant=tenant, url=receiver.url(f"/{n}"))
    receiver.script("/1", [500, 502, 200])
    receiver.script("/2", [404, 404, 404])
    EndpointFactory(tenant=tenant)  # refused
    with time_machine.travel(T0, tick=False):
        for n in range(3):
            send_event(tenant, "order.paid", {"n": n})
    deliver_at(T0)
    deliver_at(T0 + timedelta(seconds=5))
    kept = rows()
    assert len(kept) >= 5

    assert hourly_stats_rebuild(since=T0 - timedelta(days=1)) == len(kept)

    assert rows() == kept


def test_a_rebuild_leaves_the_hours_before_it_alone(tenant, receiver):
    EndpointFactory(tenant=tenant, url=receiver.url("/ok"))
    with time_machine.travel(T0, tick=False):
        send_event(tenant, "order.paid", {})
    deliver_at(T0)
    Attempt.objects.all().delete()  # as retention would, after the hour was counted

    hourly_stats_rebuild(since=T0 + timedelta(hours=1))

    assert sum(row["succeeded"] for row in rows().values()) == 1


def _outcome(delivery: Delivery, started_at: datetime, status: int | None, ms: float) -> Outcome:
    attempt = Attempt(
        delivery=delivery, number=1, started_at=started_at, duration_ms=ms, url="https://x.test/",
        response_status=status, error_kind="" if status == 200 else "http_status",
    )  # fmt: skip
    action = Action.SUCCEED if status == 200 else Action.RETRY
    return Outcome(delivery=delivery, attempt=attempt, decision=Decision(action=action))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has one writer at a time")
def test_workers_recording_the_same_hours_at_once_lose_nothing_and_never_deadlock(tenant):
    """Eight threads, each with its own connection, add to the same two endpoint-hours in
    opposite orders, many times."""
    first, second = EndpointFactory(tenant=tenant), EndpointFactory(tenant=tenant)
    with time_machine.travel(T0, tick=False):
        send_event(tenant, "order.paid", {})
    one, other = (Delivery.objects.get(endpoint=e) for e in (first, second))
    rounds, errors = 25, []

    def record(reverse: bool) -> None:
        try:
            pair = [other, one] if reverse else [one, other]
            for n in range(rounds):
                with transaction.atomic():
                    hourly_stats_add(
                        [_outcome(d, T0, 200 if n % 2 else 503, 10.0 + n) for d in pair]
                    )
        except Exception as error:  # reported below, with the thread's own traceback lost
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=record, args=(n % 2 == 1,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    for endpoint in (first, second):
        row = HourlyStat.objects.get(endpoint=endpoint)
        assert row.attempts == 8 * rounds
        assert row.succeeded == row.status_2xx == 8 * (rounds // 2)
        assert sum(row.latency.values()) == 8 * rounds
        assert row.latency[str(latency_bucket(10.0))] == 8  # n = 0 only, once from each thread


def test_percentiles_read_from_the_buckets_are_within_five_percent_of_the_exact_ones():
    durations = [random.lognormvariate(3, 1.2) for _ in range(20_000)] + [0.003, 45_000.0]
    tally = Tally()
    tally.latency.update(latency_bucket(ms) for ms in durations)
    ordered = sorted(durations)
    for percent in (1, 50, 90, 95, 99):
        exact = ordered[max(1, -(-percent * len(ordered) // 100)) - 1]
        assert tally.percentile_ms(percent) == pytest.approx(exact, rel=0.045)
    assert Tally().percentile_ms(50) is None


def test_bucket_bounds_hold_the_durations_they_count():
    for ms in (0.02, 0.5, 1.0, 2.0, 3.7, 250.0, 30_000.0):
        bucket = latency_bucket(ms)
        assert 2 ** (bucket / 8) <= ms < 2 ** ((bucket + 1) / 8)
        assert bucket_middle_ms(bucket) == pytest.approx(ms, rel=0.045)
