"""The history variant (`benchmark --history N`): attempts stored a day a partition, measured.

- Capacity: the backlog is drained with attempts partitioned, with a plain table (the
  partitioning migration undone), and partitioned again, in the same run:
  `partitioned_vs_plain_pct` (the mean of the two partitioned runs against the plain one).
- History: N attempts are stored with set-based SQL, two per delivery (a retry), four
  deliveries per event, 1 % of the deliveries dead letters and 0.5 % pending: half of them on
  one day past the retention window, the rest over the 30 days since, then counted by the hour
  as an upgrade counts them (`history_hourly_stats_rebuild_s`). With all of them stored, the
  delivery pages, the lists and a claim are timed (budget 200 ms each); then that old day is
  purged, its dead letters' attempts archived and the day dropped: `history_day_purge_s`.
"""

from __future__ import annotations

import importlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from benchmarks.pages import client_of, time_page
from deliveries.attempt_partitions import (
    AttemptPartition,
    attempt_partitions,
    attempt_partitions_ensure,
)
from deliveries.hourly_stats import hourly_stats_rebuild
from deliveries.models import Attempt, Delivery
from deliveries.services import deliveries_claim_due, deliveries_release
from deliveries.sql_names import sql_with_names
from operations.retention_partitions import attempt_partition_purge
from operations.retention_tenants import RetentionCutoffs
from subscriptions.models import Endpoint, EventType, Tenant
from subscriptions.services import tenant_create
from webhooks.models import Event

# The migration that partitions attempts: its two steps turn the table plain and back, while
# the rest of the schema (later migrations included) stays as it is.
PARTITIONING_MIGRATION = "deliveries.migrations.0020_attempt_partitions"
HISTORY_DAYS = 30  # the recent half is spread over these days; the old half is one day before
ENDPOINTS = 4
ATTEMPTS_PER_DELIVERY = 2
DUE = 1000  # pending deliveries due at once, for the claim
BUDGET_MS = 200.0


def partitioned_capacity(backlog: Callable[[str], float], figures: dict) -> None:
    """Drain a backlog partitioned, plain, and partitioned again (`backlog` takes the phase's
    name and returns deliveries per second); attempts are partitioned again afterwards."""
    first = backlog("backlog_partitioned")
    partitioning = importlib.import_module(PARTITIONING_MIGRATION)
    with connection.schema_editor() as editor:
        partitioning.unpartition(django_apps, editor)
    try:
        plain = backlog("backlog_plain")
    finally:
        with connection.schema_editor() as editor:
            partitioning.partition(django_apps, editor)
    second = backlog("backlog_partitioned_again")
    figures["partitioned_vs_plain_pct"] = round(100 * (first + second) / 2 / plain, 1)


@dataclass
class History:
    """What `history_fill` stored, for the pages and the purge."""

    attempts: int
    old_day: AttemptPartition
    endpoint_id: int
    old_delivery_id: int
    recent_delivery_id: int
    fill_seconds: float
    stats_seconds: float


def history_fill(*, attempts: int, now: datetime | None = None) -> History:
    """Store about `attempts` attempts: half on the day HISTORY_DAYS + 1 days ago, half over the
    HISTORY_DAYS days since (see the module's docstring), a statement per day."""
    now = now or timezone.now()
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = (today - timedelta(days=HISTORY_DAYS + 1)).date()
    attempt_partitions_ensure(now=now, since=first_day)
    # Its own day, unless an older partition spanning several days holds it already.
    (old_day,) = [p for p in attempt_partitions() if p.covers(first_day)]
    tenant = tenant_create(slug="history", name="History")
    endpoints = [
        Endpoint.objects.create(tenant=tenant, url=f"https://history{n}.invalid/hook")
        for n in range(ENDPOINTS)
    ]
    event_type, _ = EventType.objects.get_or_create(name="history.event")
    per_event = ENDPOINTS * ATTEMPTS_PER_DELIVERY
    days = [(old_day.lower, attempts // 2)]
    days += [
        (today - timedelta(days=n), attempts // 2 // HISTORY_DAYS) for n in range(HISTORY_DAYS)
    ]
    started = time.monotonic()
    with connection.cursor() as cursor:
        for number, (start, count) in enumerate(days):
            seconds = max(1.0, min(86_000.0, (now - start).total_seconds() - 60))
            cursor.execute(sql_with_names(FILL_SQL, Event, Delivery, Attempt), {
                "tenant": tenant.id, "event_type": event_type.id, "day": number,
                "endpoints": [e.id for e in endpoints], "start": start,
                "events": max(1, count // per_event), "step": seconds / max(1, count // per_event),
            })  # fmt: skip
        fill_seconds = time.monotonic() - started
        _store_due(tenant, endpoints[0], event_type)
        # The workers count what they record; history stored by hand is counted as an upgrade
        # counts it.
        started = time.monotonic()
        hourly_stats_rebuild(since=old_day.lower)
        stats_seconds = time.monotonic() - started
        for statement in ("VACUUM ANALYZE", "CHECKPOINT"):
            cursor.execute(statement)
    deliveries = Delivery.objects.filter(endpoint_id=endpoints[0].id).order_by("id")
    return History(
        attempts=Attempt.objects.count(),
        old_day=old_day,
        endpoint_id=endpoints[0].id,
        old_delivery_id=deliveries.values_list("id", flat=True).first() or 0,
        recent_delivery_id=deliveries.filter(created_at__lt=now - timedelta(hours=1))
        .values_list("id", flat=True)
        .last()
        or 0,
        fill_seconds=round(fill_seconds, 1),
        stats_seconds=round(stats_seconds, 1),
    )


# A day's events, their deliveries to every endpoint, and two attempts each (a 503, then the
# answer that decided the delivery), in one statement. Delivery n is a dead letter when
# n % 100 = 0, pending (held: never due) when n % 200 = 1, succeeded otherwise.
FILL_SQL = """
WITH events AS (
    INSERT INTO {Event.table} ({Event.public_id}, {Event.tenant_id}, {Event.event_type_id},
        {Event.payload}, {Event.ordering_key}, {Event.created_at})
    SELECT 'msg_history' || %(day)s || '_' || g, %(tenant)s, %(event_type)s,
           jsonb_build_object('order_id', g), '', %(start)s + make_interval(secs => g * %(step)s)
    FROM generate_series(1, %(events)s) AS g
    RETURNING {Event.id}, {Event.created_at}
), deliveries AS (
    INSERT INTO {Delivery.table} ({Delivery.event_id}, {Delivery.endpoint_id}, {Delivery.status},
        {Delivery.attempt_count}, {Delivery.next_attempt_at}, {Delivery.next_trigger},
        {Delivery.leased_by}, {Delivery.last_response_status}, {Delivery.last_error},
        {Delivery.last_attempt_at}, {Delivery.created_at}, {Delivery.finished_at},
        {Delivery.ordering_key}, {Delivery.waiting_on_key})
    SELECT e.{Event.id}, endpoint_id,
           CASE WHEN e.{Event.id} %% 100 = 0 THEN 'failed' WHEN e.{Event.id} %% 200 = 1
                THEN 'pending' ELSE 'succeeded' END,
           2, NULL, 'scheduled', '', 200, '', e.{Event.created_at} + interval '30 seconds',
           e.{Event.created_at},
           CASE WHEN e.{Event.id} %% 200 = 1 THEN NULL
                ELSE e.{Event.created_at} + interval '30 seconds' END, '', false
    FROM events e CROSS JOIN unnest(%(endpoints)s::bigint[]) AS endpoint_id
    RETURNING {Delivery.id}, {Delivery.status}, {Delivery.created_at}
)
INSERT INTO {Attempt.table} ({Attempt.delivery_id}, {Attempt.number}, {Attempt.trigger},
    {Attempt.started_at}, {Attempt.duration_ms}, {Attempt.url}, {Attempt.request_headers},
    {Attempt.response_status}, {Attempt.response_headers}, {Attempt.response_body},
    {Attempt.error_kind}, {Attempt.error_message})
SELECT d.{Delivery.id}, n, 'scheduled', d.{Delivery.created_at} + (n - 1) * interval '30 seconds',
       12.5, 'https://history.invalid/hook',
       jsonb_build_object('webhook-id', 'msg_history', 'content-type', 'application/json'),
       CASE WHEN n = 2 AND d.{Delivery.status} = 'succeeded' THEN 200 ELSE 503 END,
       jsonb_build_object('content-type', 'text/plain'), repeat('x', 200),
       CASE WHEN n = 2 AND d.{Delivery.status} = 'succeeded' THEN '' ELSE 'http_status' END,
       CASE WHEN n = 2 AND d.{Delivery.status} = 'succeeded' THEN '' ELSE 'HTTP 503' END
FROM deliveries d CROSS JOIN generate_series(1, 2) AS n
"""


def _store_due(tenant: Tenant, endpoint: Endpoint, event_type: EventType) -> None:
    """DUE pending deliveries due now, for the claim to take and give back: the workers have
    stopped by then, and nothing else sends them."""
    now = timezone.now()
    events = Event.objects.bulk_create(
        Event(tenant=tenant, event_type=event_type, payload={"due": n}) for n in range(DUE)
    )
    Delivery.objects.bulk_create(
        Delivery(event=event, endpoint=endpoint, next_attempt_at=now) for event in events
    )


def history_pages(history: History) -> list[dict]:
    """Median and worst of seven timed loads of each page, the claim included."""
    client = client_of(_staff_user())
    pages = {
        "dashboard overview": "/dashboard/",
        "dashboard deliveries": "/dashboard/deliveries/",
        "dashboard dead letters": "/dashboard/dead-letters/",
        "dashboard endpoints": "/dashboard/endpoints/",
        "dashboard endpoint": f"/dashboard/endpoints/{history.endpoint_id}/",
        "dashboard delivery, oldest": f"/dashboard/deliveries/{history.old_delivery_id}/",
        "dashboard delivery, recent": f"/dashboard/deliveries/{history.recent_delivery_id}/",
        "admin delivery, oldest": (f"/admin/deliveries/delivery/{history.old_delivery_id}/change/"),
        "admin deliveries": "/admin/deliveries/delivery/",
        "admin attempts": "/admin/deliveries/attempt/",
        "admin dead letters": "/admin/deliveries/deadletter/",
    }
    rows = [_row(name, time_page(client, path)) for name, path in pages.items()]
    rows.append(_row("claim of 100 due deliveries", _time_claims()))
    return rows


def _time_claims(runs: int = 7) -> list[float]:
    timings = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        claim = deliveries_claim_due(limit=100)
        timings.append((time.perf_counter() - started) * 1000)
        deliveries_release(claim=claim, delivery_ids=[d.id for d in claim.deliveries])
    return timings[1:]  # the first warms caches, as a running worker's would be


def _row(name: str, timings: list[float]) -> dict:
    median = round(statistics.median(timings), 1)
    return {"page": name, "median_ms": median, "max_ms": round(max(timings), 1),
            "ok": median <= BUDGET_MS}  # fmt: skip


def history_day_purge(history: History) -> dict:
    """Purge the old day as retention does (archive its kept attempts, drop it); timed."""
    before = history.old_day.upper + timedelta(seconds=1)
    started = time.perf_counter()
    purged = attempt_partition_purge(history.old_day, cutoffs=RetentionCutoffs(before=before))
    seconds = time.perf_counter() - started
    if purged is None:
        raise RuntimeError(f"{history.old_day.name} was in use: it could not be dropped.")
    deleted, archived = purged
    return {"history_day_attempts": deleted + archived, "history_day_archived": archived,
            "history_day_purge_s": round(seconds, 2)}  # fmt: skip


def history_figures(attempts: int) -> dict:
    """Fill, time the pages, purge the old day: the variant's figures."""
    history = history_fill(attempts=attempts)
    figures: dict[str, object] = {
        "history_attempts": history.attempts,
        "history_fill_s": history.fill_seconds,
        "history_hourly_stats_rebuild_s": history.stats_seconds,
    }
    pages = history_pages(history)
    figures["history_pages"] = pages
    figures["history_pages_over_budget"] = [row["page"] for row in pages if not row["ok"]]
    figures.update(history_day_purge(history))
    return figures


def _staff_user() -> User:
    user, _ = get_user_model().objects.get_or_create(
        username="history-bench", defaults={"is_staff": True, "is_superuser": True}
    )
    return user
