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

import logging
from collections.abc import Collection
from datetime import datetime

from django.db import DatabaseError, connection, transaction
from django.db.models import Exists, Min, OuterRef, Q
from django.utils import timezone

from deliveries.dispatch import wake_workers
from deliveries.models import Delivery
from deliveries.sql_names import sql_with_names
from subscriptions.models import Endpoint

logger = logging.getLogger(__name__)

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
    or from `transaction.on_commit`). Never raises: what it was to do is already committed, its
    caller (an emit, a worker's record) must not fail for it, and the sweeper advances keys left
    stalled (`keys_stalled`)."""
    try:
        advanced = keys_advance(keys)
    except DatabaseError:
        logger.warning("Could not advance ordering keys; the sweeper will", exc_info=True)
        return
    if advanced:
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


# A claim takes a key's head and up to this many of the deliveries waiting behind it, sent in
# order in the same batch until one does not succeed: a key goes that much faster than one
# claim, send, record and advance per delivery.
FOLLOWERS_PER_HEAD = 7


# For the claims' SQL (a sql_with_names template): whether the row `d` a claim passes is a keyed
# head with deliveries waiting behind it, "deep" (one probe of delivery_ordering_idx; none for an
# unkeyed row).
DEEP_HEAD_SQL = """CASE WHEN d.{Delivery.ordering_key} = '' THEN false ELSE EXISTS (
    SELECT 1 FROM {Delivery.table} w
    WHERE w.{Delivery.status} = %(pending)s AND w.{Delivery.ordering_key} <> ''
      AND w.{Delivery.endpoint_id} = d.{Delivery.endpoint_id}
      AND w.{Delivery.ordering_key} = d.{Delivery.ordering_key}
      AND w.{Delivery.waiting_on_key}) END"""


def deep_heads_per_claim(limit: int) -> int:
    """How many heads with followers a claim of `limit` takes at most: enough to fill it with
    their followers, leaving the other keys' heads to other workers, in parallel."""
    return max(1, -(-limit // (1 + FOLLOWERS_PER_HEAD)))


def deep_heads_capped(picked: list[tuple[int, int, str]], deep_heads: int) -> list[int]:
    """The ids of `picked` (id, endpoint, key) but the keyed heads with deliveries waiting behind
    them past the first `deep_heads`, as the claims' SQL does (for SQLite)."""
    keys = {(endpoint_id, key) for _, endpoint_id, key in picked if key}
    waiting = Delivery.objects.filter(
        status=Delivery.Status.PENDING,
        waiting_on_key=True,
        endpoint_id__in={endpoint_id for endpoint_id, _ in keys},
        ordering_key__in={key for _, key in keys},
    )
    deep_keys = set(waiting.values_list("endpoint_id", "ordering_key")) if keys else set()
    ids, deep = [], 0
    for delivery_id, endpoint_id, key in picked:
        if (endpoint_id, key) in deep_keys:
            deep += 1
            if deep > deep_heads:
                continue
        ids.append(delivery_id)
    return ids


def followers_lease(
    heads: list[Delivery], *, room: int, token: str, expires_at: datetime
) -> list[int]:
    """Lease, under the claim's `token`, the deliveries waiting right behind each of `heads`
    (keyed deliveries just claimed), in key order: up to FOLLOWERS_PER_HEAD each and `room` in
    all. Only an unbroken run after the head is taken, so that nothing is sent out of turn.
    Returns their ids, in id order (each key's in its order)."""
    heads = [head for head in heads if head.ordering_key]
    if not heads or room <= 0:
        return []
    per_head = min(FOLLOWERS_PER_HEAD, max(1, room // len(heads)))
    heads = heads[:room]
    now = timezone.now()
    if connection.vendor != "postgresql":
        return _followers_lease_orm(heads, per_head, token, expires_at, now)
    with connection.cursor() as cursor:
        cursor.execute(
            sql_with_names(_FOLLOWERS_SQL, Delivery),
            {
                "ids": [head.id for head in heads],
                "endpoints": [head.endpoint_id for head in heads],
                "keys": [head.ordering_key for head in heads],
                "per_head": per_head, "at": now, "token": token, "expires_at": expires_at,
                "pending": Delivery.Status.PENDING,
            },
        )  # fmt: skip
        leased = cursor.fetchall()
    return _unbroken_runs(leased)


def _unbroken_runs(leased: list[tuple[int, int, int]]) -> list[int]:
    """From (id, head id, place behind the head) rows, the ids of each head's run 1, 2, … up to
    the first place missing (one leased meanwhile by another claim)."""
    by_head: dict[int, dict[int, int]] = {}
    for delivery_id, head_id, place in leased:
        by_head.setdefault(head_id, {})[place] = delivery_id
    ids = []
    for places in by_head.values():
        place = 1
        while place in places:
            ids.append(places[place])
            place += 1
    return sorted(ids)


# The run behind each head, up to the first delivery that another claim holds: `free_so_far`.
_FOLLOWERS_SQL = """
WITH behind AS (
    SELECT w.id, w.head_id, w.place
    FROM unnest(%(ids)s::bigint[], %(endpoints)s::bigint[], %(keys)s::text[])
        AS h(id, endpoint_id, ordering_key)
    CROSS JOIN LATERAL (
        SELECT x.id, h.id AS head_id, row_number() OVER (ORDER BY x.id) AS place,
               bool_and(x.free) OVER (ORDER BY x.id) AS free_so_far
        FROM (
            SELECT d.{Delivery.id} AS id,
                   d.{Delivery.lease_expires_at} IS NULL
                   OR d.{Delivery.lease_expires_at} < %(at)s AS free
            FROM {Delivery.table} d
            WHERE d.{Delivery.status} = %(pending)s AND d.{Delivery.ordering_key} <> ''
              AND d.{Delivery.endpoint_id} = h.endpoint_id
              AND d.{Delivery.ordering_key} = h.ordering_key
              AND d.{Delivery.id} > h.id AND d.{Delivery.waiting_on_key}
            ORDER BY d.{Delivery.id} LIMIT %(per_head)s
        ) x
    ) w
    WHERE w.free_so_far
)
UPDATE {Delivery.table} AS d
SET {Delivery.leased_by} = %(token)s, {Delivery.lease_expires_at} = %(expires_at)s
FROM behind
WHERE d.{Delivery.id} = behind.id AND d.{Delivery.status} = %(pending)s
  AND d.{Delivery.waiting_on_key}
  AND (d.{Delivery.lease_expires_at} IS NULL OR d.{Delivery.lease_expires_at} < %(at)s)
RETURNING d.{Delivery.id}, behind.head_id, behind.place
"""


def _followers_lease_orm(
    heads: list[Delivery], per_head: int, token: str, expires_at: datetime, now: datetime
) -> list[int]:
    leased = []
    with transaction.atomic():
        for head in heads:
            behind = Delivery.objects.filter(
                endpoint_id=head.endpoint_id,
                ordering_key=head.ordering_key,
                status=Delivery.Status.PENDING,
                waiting_on_key=True,
                id__gt=head.id,
            ).order_by("id")[:per_head]
            for place, (delivery_id, lease_ends) in enumerate(
                behind.values_list("id", "lease_expires_at"), start=1
            ):
                if lease_ends is not None and lease_ends >= now:
                    break
                leased.append((delivery_id, head.id, place))
        Delivery.objects.filter(id__in=[row[0] for row in leased]).update(
            leased_by=token, lease_expires_at=expires_at
        )
    return _unbroken_runs(leased)


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
