"""Set-based writes for the delivery hot path: one statement per batch, not one per row.

On PostgreSQL, attempts go in with COPY and statuses with one `UPDATE … FROM unnest(…)`. Other
databases (SQLite for a laptop) take the plain ORM path, which is correct but slower. Each
statement's two forms answer to the same tests (tests/deliveries/test_bulk.py), which run on both.
Table and column names come from the models (deliveries.sql_names).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from deliveries.attempt_partitions import attempts_covered
from deliveries.fair import fair_lease_due, sharing
from deliveries.models import Attempt, Delivery
from deliveries.ordering import DEEP_HEAD_SQL, deep_heads_capped, deep_heads_per_claim
from deliveries.selectors import (
    deliveries_flowing,
    endpoint_channels_of,
    endpoint_filters_subscribed,
    endpoint_ids_to_probe,
    endpoint_pauses_subscribed,
)
from deliveries.sql_names import sql_with_names
from subscriptions.channels import channels_reach
from subscriptions.filters import FilterContext, endpoints_matching, filter_context
from subscriptions.models import Endpoint, EventType, Tenant
from webhooks.models import Event
from webhooks.wire import iso_time

ATTEMPT_COLUMNS = (
    "delivery_id", "number", "trigger", "started_at", "duration_ms", "url", "request_headers",
    "response_status", "response_headers", "response_body", "error_kind", "error_message",
)  # fmt: skip


@dataclass(frozen=True)
class DeliveryChange:
    """Where one delivery stands after an attempt: still pending, or finished."""

    delivery_id: int
    status: str
    attempt_count: int
    last_attempt_at: datetime
    last_response_status: int | None
    last_error: str
    next_attempt_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class Leased:
    delivery_ids: list[int]
    probes_ready: bool  # some circuit's cooldown has ended: a probe may go


def deliveries_lease_due(
    *, limit: int, at: datetime, skip_endpoint_ids: list[int], token: str, expires_at: datetime
) -> Leased:
    """Lease up to `limit` due deliveries to endpoints whose circuit is closed.

    `selectors.deliveries_flowing` says the same in the ORM. On PostgreSQL this is one round trip
    that walks the partial due index in order: finished deliveries keep entries there until
    vacuum runs, and an ordered index scan marks them dead as it passes so the next claim skips
    them, where the bitmap scan the planner prefers for a few rows revisits every one each time
    (12 ms a claim instead of 0.2 ms, measured under load).

    With WEBHOOKS_FAIR_CLAIMS, under contention (this process's last claim came back full:
    `deliveries.fair.claim_counted`), the batch is shared out between tenants and their
    endpoints instead (deliveries.fair).
    """
    if settings.WEBHOOKS_FAIR_CLAIMS and sharing():
        ids, probes_ready = fair_lease_due(
            limit=limit, at=at, skip_endpoint_ids=skip_endpoint_ids, token=token,
            expires_at=expires_at,
        )  # fmt: skip
        return Leased(ids, probes_ready)
    return _lease_due_in_order(limit, at, skip_endpoint_ids, token, expires_at)


def _lease_due_in_order(
    limit: int, at: datetime, skip_endpoint_ids: list[int], token: str, expires_at: datetime
) -> Leased:
    if connection.vendor != "postgresql":
        with transaction.atomic():
            picked = list(
                deliveries_flowing(at=at).exclude(endpoint_id__in=skip_endpoint_ids)
                .order_by("next_attempt_at")
                .select_for_update(skip_locked=True, of=("self",))
                .values_list("id", "endpoint_id", "ordering_key")[:limit]
            )  # fmt: skip
            ids = deep_heads_capped(picked, deep_heads_per_claim(limit))
            Delivery.objects.filter(id__in=ids).update(leased_by=token, lease_expires_at=expires_at)
        return Leased(ids, endpoint_ids_to_probe(at=at).exists())
    params: dict[str, Any] = {"at": at, "skip": skip_endpoint_ids, "limit": limit, "token": token,
              "expires_at": expires_at, "pending": Delivery.Status.PENDING,
              "deep_heads": deep_heads_per_claim(limit)}  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql_with_names(_LEASE_DUE_SQL, Delivery, Endpoint), params)
        cursor.nextset()  # past SET LOCAL
        ids = [row[0] for row in cursor.fetchall()]
        cursor.nextset()
        return Leased(ids, cursor.fetchone()[0])


# Statements in one simple query: PostgreSQL runs them as one transaction, so SET LOCAL applies
# to the claim alone. Keyed heads with deliveries waiting behind them ("deep") are taken up to
# deep_heads_per_claim, the batch's room filled with their followers (deliveries.ordering): the
# other keys' heads are left to other workers, which send them meanwhile.
_LEASE_DUE_SQL = """
SET LOCAL enable_bitmapscan = off;
WITH picked AS (
    SELECT d.{Delivery.id}, d.{Delivery.next_attempt_at},
           <deep> AS deep
    FROM {Delivery.table} d
    WHERE d.{Delivery.status} = %(pending)s AND d.{Delivery.next_attempt_at} <= %(at)s
      AND (d.{Delivery.lease_expires_at} IS NULL OR d.{Delivery.lease_expires_at} < %(at)s)
      AND d.{Delivery.endpoint_id} NOT IN (
          SELECT {Endpoint.id} FROM {Endpoint.table}
          WHERE NOT {Endpoint.is_active} OR {Endpoint.circuit_open_until} IS NOT NULL)
      AND NOT d.{Delivery.endpoint_id} = ANY(%(skip)s::bigint[])
    ORDER BY d.{Delivery.next_attempt_at}
    LIMIT %(limit)s
    FOR UPDATE OF d SKIP LOCKED
), chosen AS (
    SELECT {Delivery.id} FROM (
        SELECT {Delivery.id}, deep,
               row_number() OVER (PARTITION BY deep ORDER BY {Delivery.next_attempt_at}) AS n
        FROM picked) ranked
    WHERE NOT deep OR n <= %(deep_heads)s
), leased AS (
    UPDATE {Delivery.table} AS d
    SET {Delivery.leased_by} = %(token)s, {Delivery.lease_expires_at} = %(expires_at)s
    FROM chosen WHERE d.{Delivery.id} = chosen.{Delivery.id}
    RETURNING d.{Delivery.id}, d.{Delivery.next_attempt_at}
)
SELECT {Delivery.id} FROM leased ORDER BY {Delivery.next_attempt_at}, {Delivery.id};
SELECT EXISTS (SELECT 1 FROM {Endpoint.table}
               WHERE {Endpoint.is_active} AND {Endpoint.circuit_open_until} <= %(at)s)
""".replace("<deep>", DEEP_HEAD_SQL)


def attempts_insert(attempts: list[Attempt]) -> None:
    """Store new attempts (their ids are not read back)."""
    if connection.vendor != "postgresql":
        Attempt.objects.bulk_create(attempts)
        return
    if attempts:
        attempts_covered(max(attempt.started_at for attempt in attempts))
    copy_sql = sql_with_names(_ATTEMPTS_COPY_SQL, Attempt)
    with connection.cursor() as cursor:
        try:
            with cursor.cursor.copy(copy_sql) as copy:
                for attempt in attempts:
                    copy.write_row(_attempt_row(attempt))
        except ValueError as error:
            # Through PgBouncer, a server connection lost during the COPY ends it with two errors
            # (the server's and PgBouncer's), which psycopg reports as a ValueError: say what it
            # is, so that the caller reconnects and records again.
            if not cursor.cursor.connection.broken:
                raise
            raise OperationalError("The database connection was lost during a COPY.") from error


_ATTEMPTS_COPY_SQL = (
    "COPY {Attempt.table} ("
    + ", ".join(f"{{Attempt.{name}}}" for name in ATTEMPT_COLUMNS)
    + ") FROM STDIN"
)


def _attempt_row(attempt: Attempt) -> tuple:
    return (
        attempt.delivery_id, attempt.number, attempt.trigger, attempt.started_at,
        attempt.duration_ms, attempt.url, json.dumps(attempt.request_headers),
        attempt.response_status, json.dumps(attempt.response_headers),
        attempt.response_body, attempt.error_kind, attempt.error_message,
    )  # fmt: skip


def deliveries_extend_lease(
    *, delivery_ids: list[int], token: str, expires_at: datetime
) -> set[int]:
    """Move the lease's end to `expires_at` for those of `delivery_ids` that `token` still holds;
    returns their ids. A lease that ran out is renewed too, as long as no claim took it."""
    if connection.vendor != "postgresql":
        with transaction.atomic():
            held = Delivery.objects.filter(id__in=delivery_ids, leased_by=token)
            ids = set(held.select_for_update().values_list("id", flat=True))
            Delivery.objects.filter(id__in=ids).update(lease_expires_at=expires_at)
        return ids
    with connection.cursor() as cursor:
        cursor.execute(
            sql_with_names(_EXTEND_LEASE_SQL, Delivery), [expires_at, delivery_ids, token]
        )
        return {row[0] for row in cursor.fetchall()}


_EXTEND_LEASE_SQL = """
UPDATE {Delivery.table} SET {Delivery.lease_expires_at} = %s
WHERE {Delivery.id} = ANY(%s::bigint[]) AND {Delivery.leased_by} = %s RETURNING {Delivery.id}
"""


def deliveries_apply(changes: list[DeliveryChange], *, lease_token: str) -> None:
    """Move each delivery on and end its lease, but only where `lease_token` still holds it."""
    if connection.vendor != "postgresql":
        for change in changes:
            Delivery.objects.filter(id=change.delivery_id, leased_by=lease_token).update(
                **_orm_changes(change)
            )
        return
    columns = [[getattr(change, name) for change in changes] for name in _CHANGE_FIELDS]
    with connection.cursor() as cursor:
        cursor.execute(
            sql_with_names(_APPLY_SQL, Delivery),
            [Attempt.Trigger.SCHEDULED, *columns, lease_token],
        )


_APPLY_SQL = """
UPDATE {Delivery.table} AS d SET
    {Delivery.status} = v.status, {Delivery.attempt_count} = v.attempt_count,
    {Delivery.last_attempt_at} = v.last_attempt_at,
    {Delivery.last_response_status} = v.last_response_status,
    {Delivery.last_error} = v.last_error,
    {Delivery.next_attempt_at} = v.next_attempt_at, {Delivery.finished_at} = v.finished_at,
    {Delivery.leased_by} = '', {Delivery.lease_expires_at} = NULL, {Delivery.next_trigger} = %s,
    {Delivery.waiting_on_key} = false
FROM unnest(%s::bigint[], %s::varchar[], %s::integer[], %s::timestamptz[],
            %s::integer[], %s::text[], %s::timestamptz[], %s::timestamptz[])
    AS v(id, status, attempt_count, last_attempt_at, last_response_status,
         last_error, next_attempt_at, finished_at)
WHERE d.{Delivery.id} = v.id AND d.{Delivery.leased_by} = %s
"""


_CHANGE_FIELDS = (
    "delivery_id", "status", "attempt_count", "last_attempt_at", "last_response_status",
    "last_error", "next_attempt_at", "finished_at",
)  # fmt: skip


def _orm_changes(change: DeliveryChange) -> dict[str, object]:
    fields = {name: getattr(change, name) for name in _CHANGE_FIELDS if name != "delivery_id"}
    return {
        **fields,
        "leased_by": "",
        "lease_expires_at": None,
        "next_trigger": Attempt.Trigger.SCHEDULED,
        # Attempted, so at the head of its ordering key, or finished (deliveries.ordering).
        "waiting_on_key": False,
    }


@dataclass(frozen=True)
class StoredEvent:
    """An event just stored; None when its idempotency key was taken or its type is stale."""

    event: Event | None
    deliveries: int
    # Deliveries that may go at once: not those to an endpoint whose circuit is open.
    due: int = 0
    # False when the event type was deleted, renamed or archived since the caller read it.
    event_type_current: bool = True
    # Endpoints where the event's delivery waits behind an earlier one of its ordering key.
    waiting_endpoint_ids: tuple[int, ...] = ()


def event_insert_with_deliveries(
    *, tenant: Tenant, event_type: EventType, payload: dict, payload_json: str,
    payload_text: str, idempotency_key: str | None, ordering_key: str = "",
    channels: Sequence[str] = (), traceparent: str = "",
) -> StoredEvent:  # fmt: skip
    """Store an event and a pending delivery per subscribed active endpoint whose filter, if it
    has one, matches the event (subscriptions.filters), atomically. An event with `channels`
    (already checked) goes only to the endpoints that share one (subscriptions.channels).

    `payload_json` (the parsed payload serialised) fills the `jsonb` column; `payload_text` is
    kept as it is, to be sent. With an `ordering_key`, a delivery to an endpoint that has a
    pending delivery of that key waits behind it (deliveries.ordering).

    On PostgreSQL this is one statement (one round trip, no explicit transaction): the event
    insert, and an `INSERT … SELECT` of its deliveries, so fanning out to a thousand endpoints
    costs one query, not a thousand rows built in Python. When some subscribed endpoints have a
    filter, that statement stores nothing and returns them; their filters are evaluated here,
    and a second statement stores the event with its deliveries, provided those endpoints and
    their filters are still the ones evaluated (docs/decisions/0020-filters-at-emit.md).
    `traceparent` is the emit's span, when tracing is on (config.spans).
    """
    now = timezone.now()
    event = Event(
        tenant=tenant, event_type=event_type, payload=payload, payload_text=payload_text,
        idempotency_key=idempotency_key, ordering_key=ordering_key, channels=list(channels),
        created_at=now, traceparent=traceparent,
    )  # fmt: skip
    if connection.vendor != "postgresql":
        return _event_insert_orm(event)
    params: dict[str, Any] = {
        "public_id": event.public_id, "tenant_id": tenant.id,
        "event_type_id": event_type.id, "event_type_name": event_type.name,
        "payload": payload_json, "payload_text": payload_text,
        "idempotency_key": idempotency_key, "ordering_key": ordering_key, "now": now,
        "traceparent": traceparent, "channels": list(channels),
        "channels_json": json.dumps(list(channels)),
        "pending": Delivery.Status.PENDING, "trigger": Attempt.Trigger.SCHEDULED,
    }  # fmt: skip
    inserted = _insert_evaluating_filters(event, params)
    if inserted.event_id is None:
        return StoredEvent(event=None, deliveries=0, event_type_current=inserted.event_type_current)
    event.id = inserted.event_id
    event._state.adding = False
    event._state.db = connection.alias
    return StoredEvent(
        event=event, deliveries=inserted.created, due=inserted.due,
        waiting_endpoint_ids=inserted.waiting_endpoint_ids,
    )  # fmt: skip


@dataclass(frozen=True)
class Filtered:
    """The subscribed endpoints with a filter, as the statement saw them, in id order."""

    endpoint_ids: tuple[int, ...] = ()
    filters: tuple[str, ...] = ()
    digest: str = ""  # of them all, to tell whether they changed ("" for none)

    def pairs(self) -> list[tuple[int, str]]:
        return list(zip(self.endpoint_ids, self.filters, strict=True))


@dataclass(frozen=True)
class _Inserted:
    """What the insert statement reports."""

    event_id: int | None  # None: nothing stored
    created: int
    due: int
    event_type_current: bool
    waiting_endpoint_ids: tuple[int, ...]
    filtered: Filtered

    @classmethod
    def of(cls, row: tuple) -> _Inserted:
        event_id, created, due, current, waiting, filtered_ids, filters, digest = row
        filtered = Filtered(tuple(filtered_ids or ()), tuple(filters or ()), digest or "")
        return cls(event_id, created, due, current, tuple(waiting or ()), filtered)

    def settled(self, evaluated: Filtered) -> bool:
        """Stored; or not, for a taken idempotency key or a stale event type, and not because
        filtered endpoints remain to be evaluated."""
        stored_or_stale = self.event_id is not None or not self.event_type_current
        return stored_or_stale or self.filtered.digest == evaluated.digest


# Rounds of evaluating filters before the statement stores the event: a second one is needed
# only when a filtered endpoint was added, changed or removed during the first.
_FILTER_ROUNDS = 5


def _insert_evaluating_filters(event: Event, params: dict[str, Any]) -> _Inserted:
    first, after_evaluating = (
        sql_with_names(template, EventType, Event, Delivery, Endpoint, Wanted=_ENDPOINT_TYPES)
        for template in _EVENT_INSERT_SQLS[bool(event.ordering_key)]
    )

    def evaluating(filtered: Filtered) -> _Inserted:
        matched = endpoints_matching(filtered.pairs(), event_filter_context(event))
        return _insert(
            after_evaluating, {**params, "evaluated": filtered.digest, "matched": matched}
        )

    seen = (event.tenant_id, event.event_type_id, tuple(event.channels))
    evaluated = _filtered_seen.get(seen)
    if evaluated is None:
        evaluated, inserted = Filtered(), _insert(first, params)
    else:
        inserted = evaluating(evaluated)
    for _ in range(_FILTER_ROUNDS):
        if inserted.settled(evaluated):
            _filtered_seen.remember(seen, evaluated, any_filtered=bool(evaluated.endpoint_ids))
            return inserted
        # Some subscribed endpoints have a filter, or theirs changed since they were evaluated.
        evaluated = inserted.filtered
        inserted = evaluating(evaluated)
    if inserted.settled(evaluated):
        return inserted
    raise RuntimeError("The tenant's filtered endpoints kept changing; emit the event again.")


K = TypeVar("K")
V = TypeVar("V")


class FilteredSeen(Generic[K, V]):
    """Filtered endpoints as this process last saw them, up to `size` entries (the oldest goes
    first): an emit evaluates them before its statement, which stores the event at once if they
    are still the same. A stale entry costs one more round, never a wrong delivery."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._seen: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        return self._seen.get(key)

    def remember(self, key: K, filtered: V, *, any_filtered: bool) -> None:
        """Keep what was seen; forget the key when nothing of it is filtered."""
        if not any_filtered:
            self._seen.pop(key, None)
            return
        if key not in self._seen and len(self._seen) >= self._size:
            self._seen.pop(next(iter(self._seen)), None)  # the oldest entry
        self._seen[key] = filtered


# By tenant, event type and channels.
_filtered_seen: FilteredSeen[tuple[int, int, tuple[str, ...]], Filtered] = FilteredSeen(256)


def _insert(sql: str, params: dict[str, Any]) -> _Inserted:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return _Inserted.of(cursor.fetchone())


def event_filter_context(event: Event) -> FilterContext:
    """What endpoint filters see of an event: its type's name, payload, tenant and timestamp as
    sent. For batch emits too: one per event, shared by every filter evaluated against it."""
    return filter_context(
        event_type=event.event_type.name,
        data=event.payload,
        tenant=event.tenant.slug,
        timestamp=iso_time(event.created_at),
    )


# The table that says which event types an endpoint wants (none: all of them).
_ENDPOINT_TYPES = Endpoint.event_types.through

# An endpoint with no event types wants them all; an event with channels goes only to endpoints
# that share one (subscriptions.channels).
_SUBSCRIBED = """
      endpoint.{Endpoint.tenant_id} = %(tenant_id)s AND endpoint.{Endpoint.is_active}
      AND (cardinality(%(channels)s::text[]) = 0
           OR endpoint.{Endpoint.channels} ?| %(channels)s::text[])
      AND (NOT EXISTS (SELECT 1 FROM {Wanted.table} AS wanted
                       WHERE wanted.{Wanted.endpoint_id} = endpoint.{Endpoint.id})
           OR EXISTS (SELECT 1 FROM {Wanted.table} AS wanted
                      WHERE wanted.{Wanted.endpoint_id} = endpoint.{Endpoint.id}
                        AND wanted.{Wanted.eventtype_id} = %(event_type_id)s))"""
# The event goes in only if the subscribed endpoints with a filter are exactly those evaluated,
# with the same filters (none, the first time); otherwise the statement returns them. The
# deliveries go to the endpoints without a filter and to those whose filter matched.
_EVENT_INSERT_SQL = """
WITH kind AS (
    SELECT {EventType.id} FROM {EventType.table}
    WHERE {EventType.id} = %(event_type_id)s AND {EventType.name} = %(event_type_name)s
      AND NOT {EventType.archived}
), subscribed AS (
    SELECT endpoint.{Endpoint.id} AS id, endpoint.{Endpoint.circuit_open_until} AS paused_until,
           endpoint.{Endpoint.filter} AS expression
    FROM {Endpoint.table} AS endpoint
    WHERE <subscribed>
), filtered AS (
    SELECT id, expression FROM subscribed WHERE expression <> ''
), event AS (
    INSERT INTO {Event.table}
        ({Event.public_id}, {Event.tenant_id}, {Event.event_type_id}, {Event.payload},
         {Event.payload_text}, {Event.idempotency_key}, {Event.ordering_key}, {Event.created_at},
         {Event.traceparent}, {Event.channels})
    SELECT %(public_id)s, %(tenant_id)s, kind.{EventType.id}, %(payload)s::jsonb, %(payload_text)s,
           %(idempotency_key)s, %(ordering_key)s, %(now)s, %(traceparent)s, %(channels_json)s::jsonb
    FROM kind
    WHERE <as-evaluated>
    ON CONFLICT ({Event.tenant_id}, {Event.idempotency_key})
        WHERE {Event.idempotency_key} IS NOT NULL DO NOTHING
    RETURNING {Event.id}
), created AS (
    INSERT INTO {Delivery.table}
        ({Delivery.event_id}, {Delivery.endpoint_id}, {Delivery.status}, {Delivery.attempt_count},
         {Delivery.next_attempt_at}, {Delivery.next_trigger}, {Delivery.leased_by},
         {Delivery.last_error}, {Delivery.created_at}, {Delivery.ordering_key},
         {Delivery.waiting_on_key})
    SELECT event.{Event.id}, subscribed.id, %(pending)s, 0, <due-at>,
           %(trigger)s, '', '', %(now)s, %(ordering_key)s, <waits>
    FROM event, subscribed <behind>
    WHERE <unfiltered-or-matched>
    RETURNING {Delivery.next_attempt_at} <= %(now)s AS due, {Delivery.endpoint_id} AS endpoint_id,
              {Delivery.waiting_on_key} AS waiting
)
SELECT (SELECT {Event.id} FROM event), (SELECT count(*) FROM created),
       (SELECT count(*) FILTER (WHERE due) FROM created), EXISTS (SELECT 1 FROM kind),
       <waiting-endpoints>, unstored.*
FROM (SELECT array_agg(id ORDER BY id), array_agg(expression ORDER BY id), <digest>
      FROM filtered WHERE NOT EXISTS (SELECT 1 FROM event)) AS unstored
"""
# What the filtered endpoints were, in one value: the statement that follows their evaluation
# compares it, rather than being sent every filter back.
_DIGEST = """coalesce(md5(string_agg(id || ':' || length(expression) || ':' || expression, ','
                               ORDER BY id)), '')"""
_EVENT_INSERT_SQL = _EVENT_INSERT_SQL.replace("<subscribed>", _SUBSCRIBED.strip()).replace(
    "<digest>", _DIGEST
)
_DUE_AT = "GREATEST(%(now)s, subscribed.paused_until)"
# An event with an ordering key: a delivery to an endpoint that has a pending delivery of the key
# waits behind it. Without a key, the statement is spared the join and its planning.
_KEYED_EVENT_INSERT_SQL = (
    _EVENT_INSERT_SQL.replace("<due-at>", f"CASE WHEN behind.waits THEN NULL ELSE {_DUE_AT} END")
    .replace("<waits>", "behind.waits IS NOT NULL")
    .replace(
        "<behind>",
        """
    LEFT JOIN LATERAL (
        SELECT true AS waits FROM {Delivery.table} AS ahead
        WHERE ahead.{Delivery.status} = %(pending)s AND ahead.{Delivery.ordering_key} <> ''
          AND ahead.{Delivery.endpoint_id} = subscribed.id
          AND ahead.{Delivery.ordering_key} = %(ordering_key)s
        LIMIT 1
    ) AS behind ON true""",
    )
    .replace("<waiting-endpoints>", "(SELECT array_agg(endpoint_id) FROM created WHERE waiting)")
)
_EVENT_INSERT_SQL = (
    _EVENT_INSERT_SQL.replace("<due-at>", _DUE_AT)
    .replace("<waits>", "false")
    .replace(" <behind>", "")
    .replace("<waiting-endpoints>", "NULL::bigint[]")
)


def _evaluated(template: str) -> str:
    """The statement once filters were evaluated: the event goes in if the filtered endpoints
    are still those evaluated, with their deliveries and those of the endpoints that matched."""
    return template.replace(
        "<as-evaluated>",
        f"(SELECT {_DIGEST} FROM filtered) = %(evaluated)s",
    ).replace(
        "<unfiltered-or-matched>",
        "(subscribed.expression = '' OR subscribed.id = ANY(%(matched)s::bigint[]))",
    )


def _unevaluated(template: str) -> str:
    """The statement as first run: the event goes in if no filtered endpoint wants it (the usual
    case, which pays for no comparison), with the deliveries to the endpoints without a filter."""
    return template.replace("<as-evaluated>", "NOT EXISTS (SELECT 1 FROM filtered)").replace(
        "<unfiltered-or-matched>", "subscribed.expression = ''"
    )


# Without and with an ordering key: the first run's statement, then the one after evaluating.
_EVENT_INSERT_SQLS = {
    False: (_unevaluated(_EVENT_INSERT_SQL), _evaluated(_EVENT_INSERT_SQL)),
    True: (_unevaluated(_KEYED_EVENT_INSERT_SQL), _evaluated(_KEYED_EVENT_INSERT_SQL)),
}


def _event_insert_orm(event: Event) -> StoredEvent:
    kind, now = event.event_type, event.created_at
    try:
        with transaction.atomic():
            if not EventType.objects.filter(id=kind.id, name=kind.name, archived=False).exists():
                return StoredEvent(event=None, deliveries=0, event_type_current=False)
            event.save(force_insert=True)
            pauses = _pauses_of_endpoints_matching(event)
            waiting = _endpoints_with_key_pending(event.ordering_key, pauses)
            # As GREATEST(now, circuit_open_until) in the SQL: an open circuit holds the delivery.
            deliveries = Delivery.objects.bulk_create(
                Delivery(event=event, endpoint_id=endpoint_id, created_at=now,
                         ordering_key=event.ordering_key, waiting_on_key=endpoint_id in waiting,
                         next_attempt_at=None if endpoint_id in waiting
                         else now if until is None else max(now, until))
                for endpoint_id, until in pauses.items()
            )  # fmt: skip
    except IntegrityError:
        if event.idempotency_key is None:
            raise
        return StoredEvent(event=None, deliveries=0)
    due = sum(1 for d in deliveries if d.next_attempt_at is not None and d.next_attempt_at <= now)
    return StoredEvent(
        event=event, deliveries=len(deliveries), due=due, waiting_endpoint_ids=tuple(waiting)
    )


def _pauses_of_endpoints_matching(event: Event) -> dict[int, datetime | None]:
    """The subscribed endpoints that share one of `event`'s channels if it has any, without a
    filter or whose filter matches `event`, each with the end of its circuit's pause."""
    kind = {"tenant_id": event.tenant_id, "event_type_id": event.event_type_id}
    pauses = endpoint_pauses_subscribed(**kind)
    if event.channels:
        listening = endpoint_channels_of(endpoint_ids=list(pauses))
        pauses = {endpoint_id: until for endpoint_id, until in pauses.items()
                  if channels_reach(event.channels, listening[endpoint_id])}  # fmt: skip
    filtered = endpoint_filters_subscribed(**kind)
    if not filtered:
        return pauses
    matched = set(endpoints_matching(filtered.items(), event_filter_context(event)))
    return {endpoint_id: until for endpoint_id, until in pauses.items()
            if endpoint_id not in filtered or endpoint_id in matched}  # fmt: skip


def _endpoints_with_key_pending(key: str, endpoint_ids: Collection[int]) -> set[int]:
    if not key:
        return set()
    pending = Delivery.objects.filter(
        endpoint_id__in=list(endpoint_ids), ordering_key=key, status=Delivery.Status.PENDING
    )
    return set(pending.values_list("endpoint_id", flat=True))


def endpoints_mark_healthy(
    *, endpoint_ids: list[int], at: datetime, unchanged_for: timedelta
) -> dict[int, datetime]:
    """Record a success for these endpoints: failures cleared, circuit closed.

    An endpoint already healthy whose `last_success_at` is within `unchanged_for` is left
    alone, so a busy endpoint's row is not rewritten by every batch. Returns the endpoints
    whose circuit this closed, with the time their backlog was held until.
    """
    if not endpoint_ids:
        return {}
    if connection.vendor != "postgresql":
        return _endpoints_mark_healthy_orm(endpoint_ids, at, unchanged_for)
    with connection.cursor() as cursor:
        cursor.execute(
            sql_with_names(_MARK_HEALTHY_SQL, Endpoint),
            {"ids": endpoint_ids, "at": at, "recent": at - unchanged_for},
        )
        return dict(cursor.fetchall())


_MARK_HEALTHY_SQL = """
WITH changing AS (
    SELECT {Endpoint.id}, {Endpoint.circuit_open_until} FROM {Endpoint.table}
    WHERE {Endpoint.id} = ANY(%(ids)s::bigint[])
      AND ({Endpoint.failing_since} IS NOT NULL OR {Endpoint.consecutive_failures} > 0
           OR {Endpoint.circuit_open_until} IS NOT NULL OR {Endpoint.last_success_at} IS NULL
           OR {Endpoint.last_success_at} < %(recent)s)
    ORDER BY {Endpoint.id}
    FOR NO KEY UPDATE
), changed AS (
    UPDATE {Endpoint.table} AS endpoint
    SET {Endpoint.failing_since} = NULL, {Endpoint.last_success_at} = %(at)s,
        {Endpoint.consecutive_failures} = 0, {Endpoint.circuit_open_until} = NULL
    FROM changing WHERE endpoint.{Endpoint.id} = changing.{Endpoint.id}
)
SELECT {Endpoint.id}, {Endpoint.circuit_open_until} FROM changing
WHERE {Endpoint.circuit_open_until} IS NOT NULL
"""


def _endpoints_mark_healthy_orm(
    endpoint_ids: list[int], at: datetime, unchanged_for: timedelta
) -> dict[int, datetime]:
    changing = Endpoint.objects.filter(id__in=endpoint_ids).filter(
        Q(failing_since__isnull=False) | Q(consecutive_failures__gt=0)
        | Q(circuit_open_until__isnull=False) | Q(last_success_at__isnull=True)
        | Q(last_success_at__lt=at - unchanged_for)
    )  # fmt: skip
    with transaction.atomic():
        paused = (
            changing.filter(circuit_open_until__isnull=False)
            .select_for_update()
            .values_list("id", "circuit_open_until")
        )
        closed = {endpoint_id: until for endpoint_id, until in paused if until is not None}
        changing.update(
            failing_since=None, last_success_at=at, consecutive_failures=0, circuit_open_until=None
        )
    return closed
