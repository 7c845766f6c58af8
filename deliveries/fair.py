"""Fair claims: every tenant with due work gets a share of each batch, weighed by its
`delivery_weight`, and so does every endpoint within a tenant (decision record 0015).

A claim walks the heads of the endpoints that have pending deliveries, in endpoint-id order from
where this process's last claim stopped (round-robin), with one index seek each, and keeps those
whose endpoint is active, with a closed circuit and a due, unleased delivery. From each it takes
the oldest due deliveries, up to a share of the batch. The deliveries are ranked by their turn
within their tenant, divided by the tenant's weight, and the batch takes the first `limit`: a
tenant with one due delivery gets it into the next batch, whatever another tenant's backlog.

Its cost grows with the batch and the number of endpoints it passes over, never with the backlog.
Sharing matters only under contention, so a process claims in due order (the cheaper claim)
until a claim comes back full, and fairly from then on until one comes back short of full
(`sharing`, `claim_counted`): a steady flow pays nothing for fairness, and a backlog's first
batch is the only one served in due order.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from deliveries.models import Delivery
from deliveries.ordering import DEEP_HEAD_SQL, deep_heads_capped, deep_heads_per_claim
from deliveries.selectors import deliveries_flowing, endpoint_ids_to_probe
from deliveries.sql_names import sql_with_names
from subscriptions.models import Endpoint, Tenant

# A claim looks at this many endpoints with pending deliveries at the most on each side of where
# it starts, and takes due deliveries from this many of them.
HEADS_SCANNED = 1000
HEADS_TAKEN = 100
# Each endpoint is asked for this many times its even share of the batch, so that what one
# endpoint lacks, others fill.
SHARE_SLACK = 3


@dataclass
class _Rotation:
    """Where this process's next claim starts, and how many endpoints its last one served."""

    after_endpoint_id: int = 0
    endpoints_served: int = 1
    # The last claim came back full: there is more due work than a batch, so share it out.
    contended: bool = False


_rotation = _Rotation()


def sharing() -> bool:
    """Whether this process's next claim shares its batch out (under contention)."""
    return _rotation.contended


def shared_batch_size(limit: int) -> int:
    """The batch a claim takes while it shares (`sharing`): half of WEBHOOKS_BATCH_SIZE, so that a
    worker comes back to the claim twice as often and a quiet tenant's event waits half as long
    for it, at the cost of one more claim per batch sent (decision record 0015)."""
    return max(1, limit // 2)


def claim_counted(*, leased: int, limit: int) -> None:
    """Note how full a claim came back: full means contention, and the next claims share."""
    _rotation.contended = leased >= limit


def fair_lease_due(
    *, limit: int, at: datetime, skip_endpoint_ids: list[int], token: str, expires_at: datetime
) -> tuple[list[int], bool]:
    """Lease up to `limit` due deliveries, shared out between tenants and endpoints; also says
    whether some circuit's cooldown has ended, so that a probe may go."""
    per_endpoint = min(limit, SHARE_SLACK * math.ceil(limit / _rotation.endpoints_served))
    if connection.vendor == "postgresql":
        rows, probes_ready = _lease_sql(
            limit, at, skip_endpoint_ids, token, expires_at, per_endpoint
        )
    else:
        rows = _lease_orm(limit, at, skip_endpoint_ids, token, expires_at, per_endpoint)
        probes_ready = endpoint_ids_to_probe(at=at).exists()
    served = {endpoint_id for _, endpoint_id in rows}
    if served:  # the next claim starts after the last endpoint served, and wraps around
        _rotation.endpoints_served = len(served)
        _rotation.after_endpoint_id = max(served)
    return [delivery_id for delivery_id, _ in rows], probes_ready


def _lease_sql(
    limit: int,
    at: datetime,
    skip: list[int],
    token: str,
    expires_at: datetime,
    per_endpoint: int,
) -> tuple[list[tuple[int, int]], bool]:
    params: dict[str, Any] = {
        "at": at, "skip": skip, "limit": limit, "token": token, "expires_at": expires_at,
        "pending": Delivery.Status.PENDING, "after": _rotation.after_endpoint_id,
        "scanned": HEADS_SCANNED, "taken": HEADS_TAKEN, "per_endpoint": per_endpoint,
        "deep_heads": deep_heads_per_claim(limit),
    }  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql_with_names(_FAIR_LEASE_SQL, Delivery, Endpoint, Tenant), params)
        cursor.nextset()  # past SET LOCAL
        rows = [(row[0], row[1]) for row in cursor.fetchall()]
        cursor.nextset()
        return rows, cursor.fetchone()[0]


# The heads are found with plain index scans, not index-only ones (`attempt_count >= 0` reads the
# row): a plain scan marks the entries of finished deliveries dead as it passes, so that the next
# claim skips them, where an index-only scan would step over them again on every claim until
# vacuum runs (the due index's walk does the same, decision record 0006).
# The rows of one endpoint are picked out by comparing (endpoint_id, next_attempt_at) as a row:
# only delivery_endpoint_due_idx serves that, where `endpoint_id = x ORDER BY next_attempt_at`
# lets the planner walk the whole due index instead (11.6 s instead of 4 ms, measured).
_FAIR_LEASE_SQL = """
SET LOCAL enable_bitmapscan = off;
WITH RECURSIVE from_cursor(endpoint_id, n) AS (
    (SELECT {Delivery.endpoint_id}, 1 FROM {Delivery.table}
     WHERE {Delivery.status} = %(pending)s AND {Delivery.endpoint_id} > %(after)s
       AND {Delivery.attempt_count} >= 0
     ORDER BY {Delivery.endpoint_id} LIMIT 1)
    UNION ALL
    SELECT (SELECT d.{Delivery.endpoint_id} FROM {Delivery.table} d
            WHERE d.{Delivery.status} = %(pending)s AND d.{Delivery.endpoint_id} > h.endpoint_id
              AND d.{Delivery.attempt_count} >= 0
            ORDER BY d.{Delivery.endpoint_id} LIMIT 1), h.n + 1
    FROM from_cursor h WHERE h.endpoint_id IS NOT NULL AND h.n < %(scanned)s
),
from_start(endpoint_id, n) AS (
    (SELECT {Delivery.endpoint_id}, 1 FROM {Delivery.table}
     WHERE {Delivery.status} = %(pending)s AND {Delivery.endpoint_id} <= %(after)s
       AND {Delivery.attempt_count} >= 0
     ORDER BY {Delivery.endpoint_id} LIMIT 1)
    UNION ALL
    SELECT (SELECT d.{Delivery.endpoint_id} FROM {Delivery.table} d
            WHERE d.{Delivery.status} = %(pending)s AND d.{Delivery.endpoint_id} > h.endpoint_id
              AND d.{Delivery.endpoint_id} <= %(after)s AND d.{Delivery.attempt_count} >= 0
            ORDER BY d.{Delivery.endpoint_id} LIMIT 1), h.n + 1
    FROM from_start h WHERE h.endpoint_id IS NOT NULL AND h.n < %(scanned)s
),
heads AS (
    SELECT endpoint_id, n FROM from_cursor WHERE endpoint_id IS NOT NULL
    UNION ALL
    SELECT endpoint_id, n + %(scanned)s FROM from_start WHERE endpoint_id IS NOT NULL
),
due_heads AS (
    SELECT h.endpoint_id, h.n, e.{Endpoint.tenant_id} AS tenant_id,
           t.{Tenant.delivery_weight} AS weight
    FROM heads h
    JOIN {Endpoint.table} e ON e.{Endpoint.id} = h.endpoint_id
    JOIN {Tenant.table} t ON t.{Tenant.id} = e.{Endpoint.tenant_id}
    WHERE e.{Endpoint.is_active} AND e.{Endpoint.circuit_open_until} IS NULL
      AND NOT h.endpoint_id = ANY(%(skip)s::bigint[])
      AND EXISTS (
          SELECT 1 FROM {Delivery.table} d
          WHERE d.{Delivery.status} = %(pending)s
            AND (d.{Delivery.endpoint_id}, d.{Delivery.next_attempt_at})
                >= (h.endpoint_id, '-infinity'::timestamptz)
            AND (d.{Delivery.endpoint_id}, d.{Delivery.next_attempt_at}) <= (h.endpoint_id, %(at)s)
            AND (d.{Delivery.lease_expires_at} IS NULL OR d.{Delivery.lease_expires_at} < %(at)s))
    ORDER BY h.n
    LIMIT %(taken)s
),
picked AS (
    SELECT p.{Delivery.id} AS id, dh.endpoint_id, dh.tenant_id, dh.weight, dh.n, p.deep,
           row_number() OVER (PARTITION BY dh.endpoint_id
                              ORDER BY p.{Delivery.next_attempt_at}, p.{Delivery.id}) AS turn
    FROM due_heads dh CROSS JOIN LATERAL (
        SELECT d.{Delivery.id}, d.{Delivery.next_attempt_at},
               <deep> AS deep
        FROM {Delivery.table} d
        WHERE d.{Delivery.status} = %(pending)s
          AND (d.{Delivery.endpoint_id}, d.{Delivery.next_attempt_at})
              >= (dh.endpoint_id, '-infinity'::timestamptz)
          AND (d.{Delivery.endpoint_id}, d.{Delivery.next_attempt_at}) <= (dh.endpoint_id, %(at)s)
          AND (d.{Delivery.lease_expires_at} IS NULL OR d.{Delivery.lease_expires_at} < %(at)s)
        ORDER BY d.{Delivery.endpoint_id}, d.{Delivery.next_attempt_at}, d.{Delivery.id}
        LIMIT %(per_endpoint)s
        FOR UPDATE SKIP LOCKED
    ) p
),
ranked AS (
    SELECT id, endpoint_id, weight, n, turn, deep,
           row_number() OVER (PARTITION BY tenant_id ORDER BY turn, n) AS tenant_turn
    FROM picked
),
capped AS (
    SELECT id, endpoint_id, weight, n, turn, tenant_turn, deep,
           row_number() OVER (PARTITION BY deep
                              ORDER BY (tenant_turn - 1)::float8 / weight, n, turn) AS deep_n
    FROM ranked
),
chosen AS (
    SELECT id, endpoint_id,
           row_number() OVER (ORDER BY (tenant_turn - 1)::float8 / weight, n, turn) AS place
    FROM capped WHERE NOT deep OR deep_n <= %(deep_heads)s
    ORDER BY place LIMIT %(limit)s
),
leased AS (
    UPDATE {Delivery.table} AS d
    SET {Delivery.leased_by} = %(token)s, {Delivery.lease_expires_at} = %(expires_at)s
    FROM chosen WHERE d.{Delivery.id} = chosen.id
    RETURNING d.{Delivery.id}
)
SELECT chosen.id, chosen.endpoint_id FROM chosen JOIN leased ON leased.{Delivery.id} = chosen.id
ORDER BY chosen.place;
SELECT EXISTS (SELECT 1 FROM {Endpoint.table}
               WHERE {Endpoint.is_active} AND {Endpoint.circuit_open_until} <= %(at)s)
""".replace("<deep>", DEEP_HEAD_SQL)


def _lease_orm(
    limit: int,
    at: datetime,
    skip: list[int],
    token: str,
    expires_at: datetime,
    per_endpoint: int,
) -> list[tuple[int, int]]:
    """The same round-robin for SQLite (a laptop): correct, and slower."""
    with transaction.atomic():
        flowing = deliveries_flowing(at=at).exclude(endpoint_id__in=skip)
        after = _rotation.after_endpoint_id
        endpoint_ids = sorted(flowing.order_by().values_list("endpoint_id", flat=True).distinct())
        endpoint_ids = [e for e in endpoint_ids if e > after] + [
            e for e in endpoint_ids if e <= after
        ]
        endpoint_ids = endpoint_ids[:HEADS_TAKEN]
        tenants = dict(Endpoint.objects.filter(id__in=endpoint_ids).values_list("id", "tenant__id"))
        owners = Tenant.objects.filter(id__in=set(tenants.values()))
        weights = dict(owners.values_list("id", "delivery_weight"))
        turns: dict[int, int] = defaultdict(int)
        candidates = []
        ordering_keys = {}
        for order, endpoint_id in enumerate(endpoint_ids):
            rows = flowing.filter(endpoint_id=endpoint_id).order_by("next_attempt_at", "id")
            for turn, (delivery_id, ordering_key) in enumerate(
                rows.values_list("id", "ordering_key")[:per_endpoint]
            ):
                candidates.append((turn, order, endpoint_id, delivery_id))
                ordering_keys[delivery_id] = ordering_key
        ranked = []
        for turn, order, endpoint_id, delivery_id in sorted(candidates):
            tenant_id = tenants[endpoint_id]
            key = (turns[tenant_id] / weights[tenant_id], order, turn)
            turns[tenant_id] += 1
            ranked.append((key, delivery_id, endpoint_id))
        picked = [(d, e, ordering_keys[d]) for _, d, e in sorted(ranked)]
        kept = set(deep_heads_capped(picked, deep_heads_per_claim(limit)))
        chosen = [(d, e) for d, e, _ in picked if d in kept][:limit]
        Delivery.objects.filter(id__in=[d for d, _ in chosen]).update(
            leased_by=token, lease_expires_at=expires_at
        )
    return chosen
