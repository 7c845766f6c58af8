"""Storing a batch of events and their deliveries: on PostgreSQL one statement for all of them.

The single-event statement (deliveries.bulk) inserts an event, then `INSERT … SELECT`s its
deliveries. Here the events travel as arrays, one per column, that `unnest(…) WITH ORDINALITY`
turns back into rows numbered in the caller's order; the events get their ids in that order,
are inserted, and are fanned out to their endpoints, deliveries in that order too, in the same
statement. A batch of 500 events costs one round trip, not 500
(decision record 0017). SQLite takes the single-event path once per event, with the same results.

Endpoint filters (decision record 0020) are evaluated before the statement, against the tenant's
filtered endpoints as this process last saw them (none, the first time). The statement stores the
batch only if those are still the same, with the same filters and event types, and otherwise
stores nothing; they are then read, evaluated and the statement run again. So a batch is one
statement whether or not the tenant filters, once its filtered endpoints are known here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from deliveries.bulk import FilteredSeen, event_insert_with_deliveries
from deliveries.models import Attempt, Delivery
from deliveries.ordering import Key
from deliveries.sql_names import sql_with_names
from subscriptions.filters import endpoints_matching, filter_context
from subscriptions.models import Endpoint, EventType, Tenant
from webhooks.ids import new_message_id
from webhooks.models import Event
from webhooks.wire import iso_time


@dataclass(frozen=True)
class NewEvent:
    """One event of a batch, checked: `payload_json` fills the `jsonb` column, `payload_text` is
    what receivers get as `data`."""

    event_type: EventType
    payload: dict
    payload_json: str
    payload_text: str
    idempotency_key: str | None
    ordering_key: str  # "" for none
    channels: tuple[str, ...] = ()  # checked; none: every subscribed endpoint


@dataclass(frozen=True)
class StoredItem:
    public_id: str
    deliveries: int


@dataclass(frozen=True)
class StoredBatch:
    """What a batch insert stored: per event in the caller's order, its id and deliveries, or
    None where its idempotency key was taken."""

    items: list[StoredItem | None]
    # False when an event type was deleted, renamed or archived since the caller read it; then
    # nothing at all was stored, and the caller looks the types up again.
    event_types_current: bool = True
    due: int = 0  # deliveries that may go at once (not held behind an open circuit)
    # Keys where a delivery waits behind one stored before this batch: to advance after commit.
    waiting_keys: tuple[Key, ...] = ()


def events_insert_with_deliveries(
    *, tenant: Tenant, events: Sequence[NewEvent], traceparent: str = ""
) -> StoredBatch:
    """Store `events` for `tenant`, in order, each with a pending delivery per subscribed active
    endpoint (that shares one of its channels, for an event with channels), atomically. An
    event whose idempotency key the tenant already used is skipped.
    Every event keeps `traceparent`, the batch's emit span when tracing is on (config.spans).

    Deliveries of events with an ordering key wait, per endpoint, behind a pending delivery of
    that key stored before, and behind the batch's earlier events of that key
    (deliveries.ordering).
    """
    if not events:
        return StoredBatch(items=[])
    if connection.vendor != "postgresql":
        return _insert_orm(tenant, events, traceparent)
    now = timezone.now()
    public_ids = [new_message_id() for _ in events]
    keyed = any(event.ordering_key for event in events)
    params: dict[str, Any] = {
        "public_ids": public_ids,
        "event_type_ids": [event.event_type.id for event in events],
        "event_type_names": [event.event_type.name for event in events],
        "payloads": [event.payload_json for event in events],
        "payload_texts": [event.payload_text for event in events],
        "idempotency_keys": [event.idempotency_key for event in events],
        "ordering_keys": [event.ordering_key for event in events],
        "channels": [json.dumps(event.channels) for event in events],
        "tenant_id": tenant.id, "now": now, "traceparent": traceparent,
        "event_table": Event._meta.db_table, "event_id": Event._meta.pk.column,
        "pending": Delivery.Status.PENDING, "trigger": Attempt.Trigger.SCHEDULED,
    }  # fmt: skip
    sql = sql_with_names(
        _KEYED_BATCH_SQL if keyed else _BATCH_SQL,
        EventType, Event, Delivery, Endpoint, Wanted=Endpoint.event_types.through,
    )  # fmt: skip
    filtered = _filtered_seen.get(tenant.id) or _NONE_FILTERED
    for _ in range(FILTER_ROUNDS):
        params.update(_matches(tenant, events, filtered, now))
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            filters_current, current, stored, counts, due, waiting_endpoints, waiting_keys = (
                cursor.fetchone()
            )
        if filters_current or not current:
            break
        filtered = _filtered_endpoints(tenant.id)
        _filtered_seen.remember(tenant.id, filtered, any_filtered=bool(filtered.filters))
    else:
        raise RuntimeError("The tenant's filtered endpoints kept changing; send the batch again.")
    if not current:
        return StoredBatch(items=[None] * len(events), event_types_current=False)
    deliveries = dict(zip(stored or [], counts or [], strict=True))
    return StoredBatch(
        items=[
            StoredItem(public_id, deliveries[n]) if n in deliveries else None
            for n, public_id in enumerate(public_ids, start=1)
        ],
        due=due,
        waiting_keys=tuple(zip(waiting_endpoints or [], waiting_keys or [], strict=True)),
    )


# Rounds of reading and evaluating the filters, should they keep changing meanwhile.
FILTER_ROUNDS = 5


@dataclass(frozen=True)
class _Filtered:
    """The tenant's active endpoints with a filter, by id: the filter, and the event types the
    endpoint wants (empty: all)."""

    filters: dict[int, str]
    wanted: dict[int, set[int]]

    def wanted_texts(self) -> list[str]:
        """Each endpoint's event types as the statement writes them, to compare."""
        return [
            ",".join(map(str, sorted(self.wanted[endpoint_id]))) for endpoint_id in self.filters
        ]


_NONE_FILTERED = _Filtered({}, {})
# By tenant: a batch is one statement while they stay the same.
_filtered_seen: FilteredSeen[int, _Filtered] = FilteredSeen(10_000)


def _filtered_endpoints(tenant_id: int) -> _Filtered:
    rows = Endpoint.objects.filter(tenant_id=tenant_id, is_active=True).exclude(filter="")
    filters = dict(rows.order_by("id").values_list("id", "filter"))
    wanted: dict[int, set[int]] = {endpoint_id: set() for endpoint_id in filters}
    if filters:
        subscriptions = Endpoint.event_types.through.objects.filter(endpoint_id__in=list(filters))
        for endpoint_id, event_type_id in subscriptions.values_list("endpoint_id", "eventtype_id"):
            wanted[endpoint_id].add(event_type_id)
    return _Filtered(filters, wanted)


def _matches(
    tenant: Tenant, events: Sequence[NewEvent], filtered: _Filtered, now: datetime
) -> dict[str, list]:
    """The statement's filter parameters: the filtered endpoints as evaluated, and each pair of
    an event (numbered from 1) and a filtered endpoint whose filter matched it."""
    items: list[int] = []
    endpoints: list[int] = []
    if filtered.filters:
        timestamp = iso_time(now)
        for n, event in enumerate(events, start=1):
            candidates = [
                (endpoint_id, expression)
                for endpoint_id, expression in filtered.filters.items()
                if not filtered.wanted[endpoint_id]
                or event.event_type.id in filtered.wanted[endpoint_id]
            ]
            if not candidates:
                continue
            context = filter_context(
                event_type=event.event_type.name, data=event.payload, tenant=tenant.slug,
                timestamp=timestamp,
            )  # fmt: skip
            for endpoint_id in endpoints_matching(candidates, context):
                items.append(n)
                endpoints.append(endpoint_id)
    return {
        "filtered_ids": list(filtered.filters),
        "filtered_expressions": list(filtered.filters.values()),
        "filtered_wanted": filtered.wanted_texts(),
        "matched_items": items,
        "matched_endpoints": endpoints,
    }


# `item` numbers the events from 1 in the caller's order, and draws their ids in that order.
# Nothing is inserted unless every event type is still as the caller read it. The events are
# inserted in idempotency-key order: two batches sharing keys then wait for each other at their
# first shared key, where in the caller's orders they could each hold a key that the other waits
# for, a deadlock (seen with crossing orders of 500 keys). The ids keep the caller's order.
_BATCH_SQL = """
WITH item AS (
    SELECT nextval(pg_get_serial_sequence(%(event_table)s, %(event_id)s)) AS event_id, i.*
    FROM unnest(%(public_ids)s::text[], %(event_type_ids)s::bigint[],
                %(event_type_names)s::text[], %(payloads)s::text[],
                %(payload_texts)s::text[], %(idempotency_keys)s::text[],
                %(ordering_keys)s::text[], %(channels)s::jsonb[])
        WITH ORDINALITY AS i(public_id, event_type_id, event_type_name, payload, payload_text,
                             idempotency_key, ordering_key, channels, n)
), kinds AS (
    SELECT NOT EXISTS (
        SELECT 1 FROM item WHERE NOT EXISTS (
            SELECT 1 FROM {EventType.table} AS kind
            WHERE kind.{EventType.id} = item.event_type_id
              AND kind.{EventType.name} = item.event_type_name AND NOT kind.{EventType.archived})
    ) AS current
), filters AS (
    -- The tenant's filtered endpoints, still as evaluated before the statement?
    SELECT coalesce(array_agg(endpoint.{Endpoint.id} ORDER BY endpoint.{Endpoint.id}),
                        ARRAY[]::bigint[]) = %(filtered_ids)s::bigint[]
           AND coalesce(array_agg(endpoint.{Endpoint.filter} ORDER BY endpoint.{Endpoint.id}),
                        ARRAY[]::text[]) = %(filtered_expressions)s::text[]
           AND coalesce(array_agg(
                   (SELECT coalesce(string_agg(wanted.{Wanted.eventtype_id}::text, ','
                                               ORDER BY wanted.{Wanted.eventtype_id}), '')
                    FROM {Wanted.table} AS wanted
                    WHERE wanted.{Wanted.endpoint_id} = endpoint.{Endpoint.id})
                   ORDER BY endpoint.{Endpoint.id}), ARRAY[]::text[]) = %(filtered_wanted)s::text[]
               AS current
    FROM {Endpoint.table} AS endpoint
    WHERE endpoint.{Endpoint.tenant_id} = %(tenant_id)s AND endpoint.{Endpoint.is_active}
      AND endpoint.{Endpoint.filter} <> ''
), matched AS (
    SELECT * FROM unnest(%(matched_items)s::bigint[], %(matched_endpoints)s::bigint[])
        AS m(n, endpoint_id)
), event AS (
    INSERT INTO {Event.table}
        ({Event.id}, {Event.public_id}, {Event.tenant_id}, {Event.event_type_id},
         {Event.payload}, {Event.payload_text}, {Event.idempotency_key}, {Event.ordering_key},
         {Event.created_at}, {Event.traceparent}, {Event.channels})
    SELECT item.event_id, item.public_id, %(tenant_id)s, item.event_type_id, item.payload::jsonb,
           item.payload_text, item.idempotency_key, item.ordering_key, %(now)s, %(traceparent)s,
           item.channels
    FROM item WHERE (SELECT current FROM kinds) AND (SELECT current FROM filters)
    ORDER BY item.idempotency_key, item.n
    ON CONFLICT ({Event.tenant_id}, {Event.idempotency_key})
        WHERE {Event.idempotency_key} IS NOT NULL DO NOTHING
    RETURNING {Event.id}
), stored AS (
    SELECT item.event_id, item.n, item.event_type_id, item.ordering_key, item.channels
    FROM event JOIN item ON item.event_id = event.{Event.id}
), target AS (
    -- Eligibility: the endpoints each stored event goes to, all in this one place. An endpoint
    -- of the tenant, active, that wants the event's type (one with no types wants all), shares
    -- one of the event's channels if it has any, and has no filter or one that matched it.
    SELECT stored.event_id, stored.n, stored.ordering_key, endpoint.{Endpoint.id} AS endpoint_id,
           endpoint.{Endpoint.circuit_open_until} AS circuit_open_until
    FROM stored JOIN {Endpoint.table} AS endpoint
        ON endpoint.{Endpoint.tenant_id} = %(tenant_id)s AND endpoint.{Endpoint.is_active}
    WHERE (NOT EXISTS (SELECT 1 FROM {Wanted.table} AS wanted
                       WHERE wanted.{Wanted.endpoint_id} = endpoint.{Endpoint.id})
           OR EXISTS (SELECT 1 FROM {Wanted.table} AS wanted
                      WHERE wanted.{Wanted.endpoint_id} = endpoint.{Endpoint.id}
                        AND wanted.{Wanted.eventtype_id} = stored.event_type_id))
      AND (stored.channels = '[]'::jsonb OR endpoint.{Endpoint.channels} ?| ARRAY(
               SELECT jsonb_array_elements_text(stored.channels)))
      AND (endpoint.{Endpoint.filter} = ''
           OR EXISTS (SELECT 1 FROM matched
                      WHERE matched.n = stored.n AND matched.endpoint_id = endpoint.{Endpoint.id}))
), placed AS (
    SELECT target.*, <behind-earlier> AS behind_earlier, <behind-batch> AS behind_batch
    FROM target <ahead>
), created AS (
    INSERT INTO {Delivery.table}
        ({Delivery.event_id}, {Delivery.endpoint_id}, {Delivery.status}, {Delivery.attempt_count},
         {Delivery.next_attempt_at}, {Delivery.next_trigger}, {Delivery.leased_by},
         {Delivery.last_error}, {Delivery.created_at}, {Delivery.ordering_key},
         {Delivery.waiting_on_key})
    SELECT event_id, endpoint_id, %(pending)s, 0,
           CASE WHEN behind_earlier OR behind_batch THEN NULL
                ELSE GREATEST(%(now)s, circuit_open_until) END,
           %(trigger)s, '', '', %(now)s, ordering_key, behind_earlier OR behind_batch
    FROM placed
    ORDER BY n, endpoint_id
    RETURNING {Delivery.event_id} AS event_id, {Delivery.next_attempt_at} <= %(now)s AS due
), counted AS (
    SELECT event_id, count(*) AS deliveries FROM created GROUP BY event_id
), waiting AS (
    SELECT DISTINCT endpoint_id, ordering_key FROM placed WHERE behind_earlier
)
SELECT (SELECT current FROM filters), (SELECT current FROM kinds),
       ARRAY(SELECT stored.n FROM stored ORDER BY stored.n),
       ARRAY(SELECT coalesce(counted.deliveries, 0) FROM stored
             LEFT JOIN counted ON counted.event_id = stored.event_id ORDER BY stored.n),
       (SELECT count(*) FILTER (WHERE due) FROM created),
       ARRAY(SELECT endpoint_id FROM waiting ORDER BY endpoint_id, ordering_key),
       ARRAY(SELECT ordering_key FROM waiting ORDER BY endpoint_id, ordering_key)
"""
# With ordering keys, a keyed delivery waits if its endpoint has a pending delivery of the key
# stored before (one probe of delivery_ordering_idx; the batch's own inserts are not visible to
# the statement), or if an earlier event of the batch with that key goes to the same endpoint.
_KEYED_BATCH_SQL = (
    _BATCH_SQL.replace("<behind-earlier>", "ahead.pending IS NOT NULL")
    .replace(
        "<behind-batch>",
        "target.ordering_key <> '' AND row_number() OVER ("
        "PARTITION BY target.endpoint_id, target.ordering_key ORDER BY target.n) > 1",
    )
    .replace(
        "<ahead>",
        """LEFT JOIN LATERAL (
        SELECT true AS pending FROM {Delivery.table} AS ahead
        WHERE target.ordering_key <> ''
          AND ahead.{Delivery.status} = %(pending)s AND ahead.{Delivery.ordering_key} <> ''
          AND ahead.{Delivery.endpoint_id} = target.endpoint_id
          AND ahead.{Delivery.ordering_key} = target.ordering_key
        LIMIT 1
    ) AS ahead ON true""",
    )
)
# Without: no probe, no window, and nothing ever waits.
_BATCH_SQL = (
    _BATCH_SQL.replace("<behind-earlier>", "false")
    .replace("<behind-batch>", "false")
    .replace(" <ahead>", "")
)


def _insert_orm(tenant: Tenant, events: Sequence[NewEvent], traceparent: str) -> StoredBatch:
    """The same for SQLite, one event after another: each event's deliveries are visible to the
    next, so a batch's later events of a key wait behind its earlier ones as they should."""
    items: list[StoredItem | None] = []
    due = 0
    waiting: set[Key] = set()
    with transaction.atomic():
        if not _event_types_current(events):
            return StoredBatch(items=[None] * len(events), event_types_current=False)
        for event in events:
            stored = event_insert_with_deliveries(
                tenant=tenant, event_type=event.event_type, payload=event.payload,
                payload_json=event.payload_json, payload_text=event.payload_text,
                idempotency_key=event.idempotency_key, ordering_key=event.ordering_key,
                channels=event.channels, traceparent=traceparent,
            )  # fmt: skip
            if stored.event is None:
                items.append(None)
                continue
            items.append(StoredItem(stored.event.public_id, stored.deliveries))
            due += stored.due
            # Also keys that wait only behind this batch: advancing those changes nothing.
            waiting.update((endpoint_id, event.ordering_key)
                           for endpoint_id in stored.waiting_endpoint_ids)  # fmt: skip
    return StoredBatch(items=items, due=due, waiting_keys=tuple(sorted(waiting)))


def _event_types_current(events: Sequence[NewEvent]) -> bool:
    wanted = {(event.event_type.id, event.event_type.name) for event in events}
    found = EventType.objects.filter(
        id__in={kind_id for kind_id, _ in wanted}, archived=False
    ).values_list("id", "name")
    return wanted <= set(found)
