"""Ordering keys: the deliveries to one endpoint that share a key go one at a time, in emission
order (decision record 0016).

Only the head of a key (its oldest pending delivery) is ever due. The others are pending too, but
`waiting_on_key`, with no `next_attempt_at`: the claims never see them, so a key's backlog costs
them nothing, and unkeyed deliveries are claimed exactly as before. Whoever finishes, replays or
emits a keyed delivery then calls `keys_advance` for its keys, once its transaction commits:

- the key's oldest pending delivery waiting behind nothing goes (`waiting_on_key` cleared, due
  now, or at the end of its endpoint's circuit pause);
- a replayed delivery older than the key's head takes its place at the head: the head, unless a
  worker holds it, waits again.

Advancing after the commit is what makes a concurrent emit safe: an emit that saw the head still
pending, and so stored its delivery waiting, advances the key itself once it commits, by which
time the head's end is either visible to it, or the head's worker advances after the emit's
commit and sees the new delivery. A process that dies between its commit and the advance leaves a
key stalled, never out of order; the sweeper advances stalled keys (`keys_stalled`).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from django.db import connection, transaction
from django.db.models import Exists, Min, OuterRef, Q
from django.utils import timezone

from deliveries.dispatch import wake_workers
from deliveries.models import Delivery
from deliveries.sql_names import sql_with_names
from subscriptions.models import Endpoint

Key = tuple[int, str]  # (endpoint id, ordering key)


def keys_advance(keys: Collection[Key], *, at: datetime | None = None) -> list[int]:
    """Let the head of each key go where nothing of the key is in flight or due; returns the ids
    of the deliveries that became due now or later. Safe to call at any time, any number of
    times, concurrently: it never lets two deliveries of a key go at once."""
    keys = sorted({key for key in keys if key[1]})
    if not keys:
        return []
    at = at or timezone.now()
    if connection.vendor != "postgresql":
        return _advance_orm(keys, at)
    with connection.cursor() as cursor:
        cursor.execute(
            sql_with_names(_ADVANCE_SQL, Delivery, Endpoint),
            {
                "endpoints": [endpoint_id for endpoint_id, _ in keys],
                "keys": [key for _, key in keys],
                "at": at,
                "pending": Delivery.Status.PENDING,
            },
        )
        return [row[0] for row in cursor.fetchall()]


# A data-modifying CTE's changes are not visible to the rest of its statement, so the final
# UPDATE counts as still going those that `demoted` made wait: `NOT IN demoted` leaves them out.
# A concurrent claim that leased one first makes the demotion skip it (the lease is checked again
# on the row's latest version), and then the head stays waiting behind it.
_ADVANCE_SQL = """
WITH keys AS (
    SELECT * FROM unnest(%(endpoints)s::bigint[], %(keys)s::text[]) AS k(endpoint_id, ordering_key)
), heads AS (
    SELECT k.endpoint_id, k.ordering_key, h.{Delivery.id} AS id
    FROM keys k CROSS JOIN LATERAL (
        SELECT d.{Delivery.id}, d.{Delivery.waiting_on_key} FROM {Delivery.table} d
        WHERE d.{Delivery.status} = %(pending)s AND d.{Delivery.ordering_key} <> ''
          AND d.{Delivery.endpoint_id} = k.endpoint_id
          AND d.{Delivery.ordering_key} = k.ordering_key
        ORDER BY d.{Delivery.id} LIMIT 1
    ) h
    WHERE h.{Delivery.waiting_on_key}
), demoted AS (
    UPDATE {Delivery.table} AS d
    SET {Delivery.waiting_on_key} = true, {Delivery.next_attempt_at} = NULL
    FROM heads
    WHERE d.{Delivery.status} = %(pending)s AND d.{Delivery.ordering_key} <> ''
      AND d.{Delivery.endpoint_id} = heads.endpoint_id
      AND d.{Delivery.ordering_key} = heads.ordering_key
      AND d.{Delivery.id} > heads.id AND NOT d.{Delivery.waiting_on_key}
      AND (d.{Delivery.lease_expires_at} IS NULL OR d.{Delivery.lease_expires_at} < %(at)s)
    RETURNING d.{Delivery.id}
)
UPDATE {Delivery.table} AS d
SET {Delivery.waiting_on_key} = false,
    {Delivery.next_attempt_at} = CASE WHEN e.{Endpoint.is_active}
                                      THEN GREATEST(%(at)s, e.{Endpoint.circuit_open_until}) END
FROM heads JOIN {Endpoint.table} e ON e.{Endpoint.id} = heads.endpoint_id
WHERE d.{Delivery.id} = heads.id AND d.{Delivery.status} = %(pending)s
  AND d.{Delivery.waiting_on_key}
  AND NOT EXISTS (
      SELECT 1 FROM {Delivery.table} going
      WHERE going.{Delivery.status} = %(pending)s AND going.{Delivery.ordering_key} <> ''
        AND going.{Delivery.endpoint_id} = heads.endpoint_id
        AND going.{Delivery.ordering_key} = heads.ordering_key
        AND NOT going.{Delivery.waiting_on_key}
        AND going.{Delivery.id} NOT IN (SELECT {Delivery.id} FROM demoted))
RETURNING d.{Delivery.id}
"""


def keys_advance_and_wake(keys: Collection[Key]) -> None:
    """`keys_advance`, then wake the workers if a head became due (call outside a transaction,
    or from `transaction.on_commit`)."""
    if keys_advance(keys):
        transaction.on_commit(wake_workers)


def _advance_orm(keys: list[Key], at: datetime) -> list[int]:
    """The same for SQLite, whose writers take turns: one key after another."""
    advanced = []
    with transaction.atomic():
        for endpoint_id, key in keys:
            live = Delivery.objects.filter(
                endpoint_id=endpoint_id, ordering_key=key, status=Delivery.Status.PENDING
            )
            head = live.order_by("id").only("id", "waiting_on_key").first()
            if head is None or not head.waiting_on_key:
                continue
            live.filter(id__gt=head.id, waiting_on_key=False).filter(
                Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=at)
            ).update(waiting_on_key=True, next_attempt_at=None)
            if live.filter(waiting_on_key=False).exists():
                continue  # a worker holds one of the key: the head goes after it
            endpoint = Endpoint.objects.only("is_active", "circuit_open_until").get(id=endpoint_id)
            due = None
            if endpoint.is_active:
                due = max(at, endpoint.circuit_open_until or at)
            Delivery.objects.filter(id=head.id).update(waiting_on_key=False, next_attempt_at=due)
            advanced.append(head.id)
    return advanced


def keys_stalled(*, limit: int = 1000) -> list[Key]:
    """Keys whose oldest pending delivery waits: left so by a process that died between its
    commit and its advance (or, harmlessly, one whose advance is on its way). On PostgreSQL a
    skip scan visits each key with pending deliveries once, at its head: its cost grows with the
    number of keys, not with their backlogs."""
    if connection.vendor != "postgresql":
        return _keys_stalled_orm(limit)
    with connection.cursor() as cursor:
        cursor.execute(
            sql_with_names(_STALLED_SQL, Delivery),
            {"pending": Delivery.Status.PENDING, "limit": limit},
        )
        return [(endpoint_id, key) for endpoint_id, key in cursor.fetchall()]


_STALLED_SQL = """
WITH RECURSIVE heads AS (
    (SELECT {Delivery.endpoint_id} AS endpoint_id, {Delivery.ordering_key} AS ordering_key,
            {Delivery.waiting_on_key} AS waiting
     FROM {Delivery.table}
     WHERE {Delivery.status} = %(pending)s AND {Delivery.ordering_key} <> ''
     ORDER BY {Delivery.endpoint_id}, {Delivery.ordering_key}, {Delivery.id} LIMIT 1)
    UNION ALL
    SELECT next.* FROM heads h CROSS JOIN LATERAL (
        SELECT d.{Delivery.endpoint_id}, d.{Delivery.ordering_key}, d.{Delivery.waiting_on_key}
        FROM {Delivery.table} d
        WHERE d.{Delivery.status} = %(pending)s AND d.{Delivery.ordering_key} <> ''
          AND (d.{Delivery.endpoint_id}, d.{Delivery.ordering_key})
              > (h.endpoint_id, h.ordering_key)
        ORDER BY d.{Delivery.endpoint_id}, d.{Delivery.ordering_key}, d.{Delivery.id} LIMIT 1
    ) next
)
SELECT endpoint_id, ordering_key FROM heads WHERE waiting LIMIT %(limit)s
"""


def _keys_stalled_orm(limit: int) -> list[Key]:
    ahead = Delivery.objects.filter(
        endpoint_id=OuterRef("endpoint_id"),
        ordering_key=OuterRef("ordering_key"),
        status=Delivery.Status.PENDING,
        id__lt=OuterRef("id"),
    )
    stalled = (
        Delivery.objects.filter(status=Delivery.Status.PENDING, waiting_on_key=True)
        .exclude(ordering_key="")
        .filter(~Exists(ahead))
        .values_list("endpoint_id", "ordering_key")
        .order_by("endpoint_id", "ordering_key")
        .distinct()[:limit]
    )
    return list(stalled)


def delivery_blocked_by(delivery: Delivery) -> int | None:
    """The id of the delivery of the same key that `delivery` waits behind (the key's head), or
    None when it waits for nothing."""
    if not delivery.waiting_on_key or delivery.status != Delivery.Status.PENDING:
        return None
    return (
        Delivery.objects.filter(
            endpoint_id=delivery.endpoint_id,
            ordering_key=delivery.ordering_key,
            status=Delivery.Status.PENDING,
            id__lt=delivery.id,
        )
        .exclude(ordering_key="")
        .aggregate(head=Min("id"))["head"]
    )
