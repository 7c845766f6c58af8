"""The noisy-neighbour variant: one tenant's backlog drains while another emits a few events.

A tenant that imports 20,000 orders before the workers catch up must not hold up another tenant's
single event. This stores the noisy tenant's backlog as due deliveries at once (as if emitted
while the workers were busy), then the quiet tenant emits QUIET_RATE events a second for a
window while the backlog drains. It reports the quiet tenant's event→receipt latency, and the
noisy tenant's throughput against the unshared backlog measured earlier in the same run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Max

from benchmarks.emitting import EVENT_TYPE, emit_steady
from deliveries.dispatch import wake_workers
from deliveries.models import Delivery
from deliveries.sql_names import sql_with_names
from subscriptions.models import EventType, Tenant
from subscriptions.services import endpoint_create, endpoint_disable, tenant_create
from webhooks.models import Event

NOISY_BACKLOG = 20_000
QUIET_RATE = 5.0
NOISY_PATH, QUIET_PATH = "/n", "/q"

# Due at once, spread over the noisy tenant's endpoints; `sent_at` is when the backlog was stored.
BACKLOG_SQL = """
WITH events AS (
    INSERT INTO {Event.table} ({Event.public_id}, {Event.tenant_id}, {Event.event_type_id},
        {Event.payload}, {Event.ordering_key}, {Event.created_at})
    SELECT 'msg_noisy' || g, %(tenant)s, %(event_type)s,
           jsonb_build_object('n', g, 'sent_at', %(sent_at)s::float8), '', now()
    FROM generate_series(1, %(count)s) AS g
    RETURNING {Event.id}
)
INSERT INTO {Delivery.table} ({Delivery.event_id}, {Delivery.endpoint_id}, {Delivery.status},
    {Delivery.attempt_count}, {Delivery.next_attempt_at}, {Delivery.next_trigger},
    {Delivery.leased_by}, {Delivery.last_error}, {Delivery.created_at}, {Delivery.ordering_key},
    {Delivery.waiting_on_key})
SELECT e.{Event.id}, (%(endpoints)s::bigint[])[1 + e.{Event.id} %% %(spread)s], 'pending', 0,
       now(), 'scheduled', '', '', now(), '', false
FROM events e
"""


@dataclass
class NoisyNeighbour:
    """What the variant measured, and what the receiver must have got."""

    figures: dict
    quiet_events: int
    secrets: dict[str, str]  # by receiver path


def noisy_neighbour(
    *, url: str, endpoints: int, backlog: int, window: float, unshared_per_s: float
) -> NoisyNeighbour:
    """Drain a noisy tenant's `backlog` while a quiet tenant emits for `window` seconds.

    The noisy tenant's endpoints are disabled afterwards, so that what is left of a backlog too
    large to drain in the window waits instead of running into later phases.
    """
    noisy = tenant_create(slug="noisy", name="Noisy tenant")
    quiet = tenant_create(slug="quiet", name="Quiet tenant")
    secrets = {}
    noisy_ids = []
    for n in range(endpoints):
        endpoint = endpoint_create(tenant=noisy, url=f"{url}{NOISY_PATH}{n}")
        noisy_ids.append(endpoint.id)
        secrets[f"{NOISY_PATH}{n}"] = endpoint.secret
    quiet_endpoint = endpoint_create(tenant=quiet, url=f"{url}{QUIET_PATH}0")
    secrets[f"{QUIET_PATH}0"] = quiet_endpoint.secret
    since = Delivery.objects.order_by("-id").values_list("id", flat=True).first() or 0

    started = _store_backlog(noisy, noisy_ids, backlog)
    wake_workers()
    quiet_events = emit_steady(quiet, QUIET_RATE, window)
    window_ended = time.time()
    noisy_done = Delivery.objects.filter(
        id__gt=since, endpoint_id__in=noisy_ids, status=Delivery.Status.SUCCEEDED
    )
    delivered = noisy_done.count()
    drained = delivered >= backlog
    ended = window_ended
    if drained:  # before the window ended: its last delivery says when
        ended = noisy_done.aggregate(last=Max("finished_at"))["last"].timestamp()
    endpoint_disable(endpoint_ids=noisy_ids, reason="The noisy-neighbour window ended.")
    noisy_per_s = delivered / max(ended - started, 1e-9)
    figures = {
        "noisy_backlog": backlog,
        "noisy_delivered_in_window": delivered,
        "noisy_per_s": round(noisy_per_s, 1),
        "noisy_vs_unshared_pct": round(100 * noisy_per_s / unshared_per_s, 1),
        "quiet_events": quiet_events,
    }
    return NoisyNeighbour(figures, quiet_events, secrets)


def quiet_latencies(records: list[dict]) -> list[float]:
    """Event→receipt of each of the quiet tenant's deliveries, in milliseconds."""
    return [1000 * (r["at"] - r["sent_at"]) for r in records if r["path"].startswith(QUIET_PATH)]


def noisy_duplicates(records: list[dict]) -> int:
    """Requests of the noisy tenant beyond the first of each webhook-id (at-least-once)."""
    noisy = [(r["path"], r["headers"].get("webhook-id")) for r in records
             if r["path"].startswith(NOISY_PATH)]  # fmt: skip
    return len(noisy) - len(set(noisy))


def _store_backlog(tenant: Tenant, endpoint_ids: list[int], count: int) -> float:
    """Store `count` due deliveries in one statement; returns when they were committed."""
    event_type = EventType.objects.get(name=EVENT_TYPE)
    params: dict[str, Any] = {"tenant": tenant.id, "event_type": event_type.id, "count": count,
              "endpoints": endpoint_ids, "spread": len(endpoint_ids),
              "sent_at": time.time()}  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql_with_names(BACKLOG_SQL, Event, Delivery), params)
        # As autovacuum soon would: the claim's plan must not be made for empty tables.
        cursor.execute(f"ANALYZE {connection.ops.quote_name(Delivery._meta.db_table)}")
    return time.time()
