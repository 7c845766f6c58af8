from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.test import Client

from benchmarks.event_search import events_fill, payload_search_plans, search_paths
from benchmarks.pages import time_page
from benchmarks.scratch import scratch_database
from deliveries.models import Delivery
from deliveries.sql_names import sql_with_names
from subscriptions.models import Endpoint, EventType, Tenant
from webhooks.models import Event

BUDGET_MS = 200.0
PAGES = {
    "admin deliveries": "/admin/deliveries/delivery/",
    "admin dead letters": "/admin/deliveries/deadletter/",
    "dashboard deliveries": "/dashboard/deliveries/",
    "dashboard dead letters": "/dashboard/dead-letters/",
    "dashboard deliveries, one endpoint": "/dashboard/deliveries/?endpoint={endpoint}",
}
# Table and column names come from the models (deliveries.sql_names).
FILL_SQL = """
INSERT INTO {Event.table} ({Event.public_id}, {Event.tenant_id}, {Event.event_type_id},
    {Event.payload}, {Event.ordering_key}, {Event.created_at})
SELECT 'msg_bench' || g, %(tenant)s, %(event_type)s, jsonb_build_object('n', g), '',
       now() - make_interval(secs => %(events)s - g)
FROM generate_series(1, %(events)s) AS g;

INSERT INTO {Delivery.table} ({Delivery.event_id}, {Delivery.endpoint_id}, {Delivery.status},
    {Delivery.attempt_count}, {Delivery.next_attempt_at}, {Delivery.next_trigger},
    {Delivery.leased_by}, {Delivery.last_response_status}, {Delivery.last_error},
    {Delivery.last_attempt_at}, {Delivery.created_at}, {Delivery.finished_at},
    {Delivery.ordering_key}, {Delivery.waiting_on_key})
SELECT e.{Event.id}, ep.{Endpoint.id},
       CASE WHEN e.{Event.id} %% 100 = 0 THEN 'pending' WHEN e.{Event.id} %% 20 = 1 THEN 'failed'
            ELSE 'succeeded' END,
       CASE WHEN e.{Event.id} %% 20 = 1 THEN 8 ELSE 1 END,
       CASE WHEN e.{Event.id} %% 100 = 0 THEN now() + interval '1 hour' END,
       'scheduled', '',
       CASE WHEN e.{Event.id} %% 20 = 1 THEN 503 ELSE 200 END,
       CASE WHEN e.{Event.id} %% 20 = 1 THEN 'HTTP 503' ELSE '' END,
       e.{Event.created_at}, e.{Event.created_at},
       CASE WHEN e.{Event.id} %% 100 = 0 THEN NULL ELSE e.{Event.created_at} END, '', false
FROM {Event.table} e CROSS JOIN {Endpoint.table} ep
WHERE ep.{Endpoint.tenant_id} = %(tenant)s AND e.{Event.public_id} LIKE 'msg_bench%%';
"""


class Command(BaseCommand):
    help = (
        "Time the admin's and the dashboard's delivery lists with 1,000,000 deliveries stored, and "
        "the API's event list and searches with 1,000,000 events, in a scratch PostgreSQL "
        "database that is dropped afterwards. Budget: 200 ms each."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--deliveries", type=int, default=1_000_000)
        parser.add_argument("--endpoints", type=int, default=4)
        parser.add_argument("--events", type=int, default=1_000_000)
        parser.add_argument("--inside", action="store_true", help=argparse_hidden())

    def handle(
        self, *args: object, deliveries: int, endpoints: int, events: int, inside: bool,
        **_: object,
    ) -> None:  # fmt: skip
        if connection.vendor != "postgresql":
            raise CommandError("This benchmark needs PostgreSQL: set DATABASE_URL.")
        if inside:
            self._measure(deliveries, endpoints, events)
            return
        with scratch_database("bench_lists") as url:
            # The API's rate limit would time the throttle, not the list.
            env = {**os.environ, "DATABASE_URL": url, "WEBHOOKS_API_RATE_LIMIT": "100000/s"}
            command = [sys.executable, "manage.py", "benchmark_lists", "--inside",
                       "--deliveries", str(deliveries), "--endpoints", str(endpoints),
                       "--events", str(events)]  # fmt: skip
            result = subprocess.run(command, env=env, cwd=settings.BASE_DIR, check=False)
        if result.returncode:
            raise CommandError("Some list is over budget." if result.returncode == 3 else "Failed.")

    def _measure(self, deliveries: int, endpoints: int, events: int) -> None:
        call_command("migrate", verbosity=0)
        started = time.monotonic()
        endpoint_id = _fill(deliveries, endpoints)
        fill_seconds = time.monotonic() - started
        self.stdout.write(f"Filled {deliveries:,} deliveries in {fill_seconds:.1f} s.")
        client = Client(HTTP_HOST="localhost")
        client.force_login(_staff_user())
        rows = []
        for name, path in PAGES.items():
            timings = time_page(client, path.format(endpoint=endpoint_id))
            rows.append({"page": name, "median_ms": round(statistics.median(timings), 1),
                         "max_ms": round(max(timings), 1)})  # fmt: skip
        rows += self._measure_events(events)
        self._report(rows, deliveries, events)

    def _measure_events(self, events: int) -> list[dict]:
        started = time.monotonic()
        client = events_fill(events)
        self.stdout.write(f"Filled {events:,} events in {time.monotonic() - started:.1f} s.")
        rows = []
        for name, path in search_paths(events).items():
            timings = time_page(client, path)
            rows.append({"page": name, "median_ms": round(statistics.median(timings), 1),
                         "max_ms": round(max(timings), 1)})  # fmt: skip
        for search, plan in payload_search_plans(events).items():
            self.stdout.write(f"EXPLAIN (ANALYZE, BUFFERS) of the first page of {search}:\n{plan}")
        return rows

    def _report(self, rows: list[dict], deliveries: int, events: int) -> None:
        self.stdout.write(f"{'page':<38}{'median ms':>12}{'max ms':>10}  budget {BUDGET_MS:.0f} ms")
        for row in rows:
            verdict = "ok" if row["median_ms"] <= BUDGET_MS else "OVER"
            self.stdout.write(
                f"{row['page']:<38}{row['median_ms']:>12.1f}{row['max_ms']:>10.1f}  {verdict}"
            )
        self.stdout.write(
            json.dumps(
                {"benchmark": "lists", "deliveries": deliveries, "events": events, "pages": rows}
            )
        )
        if any(row["median_ms"] > BUDGET_MS for row in rows):
            sys.exit(3)


def argparse_hidden() -> str:
    return argparse.SUPPRESS


def _fill(deliveries: int, endpoints: int) -> int:
    tenant = Tenant.objects.create(slug="bench", name="Benchmark")
    kind = EventType.objects.create(name="bench.event")
    created = [
        Endpoint.objects.create(tenant=tenant, url=f"https://bench{n}.example.com/hook")
        for n in range(endpoints)
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            sql_with_names(FILL_SQL, Event, Delivery, Endpoint),
            {"tenant": tenant.id, "event_type": kind.id, "events": deliveries // endpoints},
        )
        cursor.execute("ANALYZE")
    return created[0].id


def _staff_user() -> User:
    return get_user_model().objects.create_superuser("bench", "bench@example.com", "bench-pass")
