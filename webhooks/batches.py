"""Batch emit: up to 500 events in one transaction, with a result for each.

Every item is checked as `send_event` checks an event. An item that fails is rejected, with a
code and a sentence, and the others go on; with `atomic`, one rejection stores nothing at all.
An idempotency key taken before, or earlier in the same batch, makes the item a duplicate of
that event, provided it is the same event (type, ordering key and payload); another event under
a taken key is rejected. The events that pass are stored with their deliveries by one statement
(deliveries.batch_emit), in the batch's order, so that events sharing an ordering key reach each
endpoint in that order.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from config import tracing
from deliveries.batch_emit import NewEvent, StoredBatch, events_insert_with_deliveries
from deliveries.dispatch import wake_workers
from deliveries.ordering import keys_advance_and_wake
from subscriptions.catalog import event_types_forget
from subscriptions.channels import channels_checked
from subscriptions.models import Tenant
from webhooks.emit_quota import emit_quota_take
from webhooks.errors import (
    BatchTooLargeError,
    EventError,
    InvalidChannelsError,
    InvalidIdempotencyKeyError,
    InvalidOrderingKeyError,
    InvalidPayloadError,
    PayloadTooLargeError,
    UnknownEventTypeError,
)
from webhooks.models import Event
from webhooks.ordering_keys import ordering_key_checked
from webhooks.payloads import json_same, same_json
from webhooks.services import event_type_resolved, payload_checked, tenant_resolved

MAX_BATCH_EVENTS = 500
IDEMPOTENCY_KEY_MAX_LENGTH = Event._meta.get_field("idempotency_key").max_length or 255
EVENT_TYPE_MAX_LENGTH = 200
ITEM_OPTIONS = frozenset({"idempotency_key", "ordering_key", "channels"})
EMIT_SPAN = "hookline.send_events"


class ItemStatus(StrEnum):
    CREATED = "created"
    DUPLICATE = "duplicate"  # of the event stored before under the same idempotency key
    REJECTED = "rejected"


class RejectionCode(StrEnum):
    INVALID_ITEM = "invalid_item"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    INVALID_PAYLOAD = "invalid_payload"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    INVALID_IDEMPOTENCY_KEY = "invalid_idempotency_key"
    INVALID_ORDERING_KEY = "invalid_ordering_key"
    INVALID_CHANNELS = "invalid_channels"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"  # the key is taken by a different event
    NOT_STORED = "not_stored"  # an atomic batch in which another item was rejected


@dataclass(frozen=True)
class EventItem:
    """One event to send. `payload_text` is the payload's JSON text as the host wrote it, when
    it came as text (the API, a file); None to serialise `payload`."""

    event_type: str
    payload: Any
    idempotency_key: str | None = None
    ordering_key: str | None = None
    payload_text: str | None = None
    channels: Sequence[str] | None = None


@dataclass(frozen=True)
class ItemResult:
    """What became of the item at `index`: `event_id` is the public id (`msg_…`) of the event
    created, or of the one it duplicates; a rejected item has a `code`, the `field` at fault
    when one is, and a `detail` sentence."""

    index: int
    status: ItemStatus
    event_id: str | None = None
    deliveries: int | None = None  # deliveries created, for a created event
    code: RejectionCode | None = None
    field: str | None = None
    detail: str | None = None


class ItemRejected(Exception):
    """An item refused before anything is stored: its code, field and sentence."""

    def __init__(self, code: RejectionCode, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.code, self.detail, self.field = code, detail, field


def events_send(
    *, tenant: Tenant | str, items: Sequence[EventItem | Sequence[Any]], atomic: bool = False
) -> list[ItemResult]:
    """Send up to MAX_BATCH_EVENTS events in one transaction; returns a result per item, in order.

    Items are EventItems, or `(event_type, payload)` or `(event_type, payload, {"idempotency_key":
    …, "ordering_key": …, "channels": […]})` tuples. Each is checked as `event_send` checks an
    event. A rejected item rejects nothing else unless `atomic`, in which case nothing is stored
    and every item says why. Workers are woken once the transaction commits (a caller's own
    transaction included). Raises UnknownTenantError (TenantInactiveError for a deactivated
    tenant), BatchTooLargeError or EmitQuotaExceededError (every item counts against the
    tenant's `max_events_per_second`; webhooks.emit_quota), nothing stored, for the batch as a
    whole, and UnknownEventTypeError in the unlikely case that event types keep changing while
    the batch is stored (send it again).
    """
    tenant = tenant_resolved(tenant)
    if len(items) > MAX_BATCH_EVENTS:
        raise BatchTooLargeError(
            f"A batch holds at most {MAX_BATCH_EVENTS} events, not {len(items)}: "
            "split it into several."
        )
    emit_quota_take(tenant=tenant, events=len(items))
    spans = tracing.spans
    if spans is None:
        return _send_atomically(tenant, items, atomic, traceparent="")
    attributes: dict[str, str | int] = {
        "hookline.tenant": tenant.slug,
        "hookline.events": len(items),
    }
    with spans.emit(EMIT_SPAN, attributes) as span:
        results = _send_atomically(tenant, items, atomic, spans.traceparent(span))
        created = sum(1 for result in results if result.status == ItemStatus.CREATED)
        span.set_attribute("hookline.created", created)
    return results


def _send_atomically(
    tenant: Tenant, items: Sequence[Any], atomic: bool, traceparent: str
) -> list[ItemResult]:
    try:
        with transaction.atomic():
            return _send(tenant, items, atomic, traceparent)
    except _AtomicBatchRefused as refused:
        return refused.results


class _AtomicBatchRefused(Exception):
    """Rolls an atomic batch back; carries its results."""

    def __init__(self, results: list[ItemResult]) -> None:
        super().__init__("atomic batch refused")
        self.results = results


@dataclass
class _Plan:
    """What to do with one item: reject it (`result`), store it (`new`), or report it as a
    duplicate, of a stored event (`result`) or of the batch's earlier item `same_as`."""

    index: int
    item: EventItem | None = None
    result: ItemResult | None = None
    new: NewEvent | None = None
    same_as: int | None = None
    ordering_key: str = ""
    channels: tuple[str, ...] = ()


def _send(tenant: Tenant, items: Sequence[Any], atomic: bool, traceparent: str) -> list[ItemResult]:
    for _attempt in range(2):
        plans = _plans(tenant, items)
        _refuse_if_atomic(plans, atomic)
        accepted = [plan for plan in plans if plan.new is not None]
        batch = events_insert_with_deliveries(
            tenant=tenant,
            events=[plan.new for plan in accepted if plan.new is not None],
            traceparent=traceparent,
        )
        if batch.event_types_current:
            break
        event_types_forget()  # an event type changed: look them up afresh, and check again
    else:
        raise UnknownEventTypeError("Event types changed while the batch was stored; send again.")
    _record_stored(tenant, accepted, batch)
    results = _results(plans)
    _refuse_if_atomic(plans, atomic)
    _after_commit(batch)
    return results


def _plans(tenant: Tenant, items: Sequence[Any]) -> list[_Plan]:
    plans = [_parsed_plan(index, item) for index, item in enumerate(items)]
    keys = {plan.item.idempotency_key for plan in plans if plan.item and plan.item.idempotency_key}
    taken = _events_by_key(tenant, keys)
    first_by_key: dict[str, _Plan] = {}
    for plan in plans:
        if plan.item is None:
            continue
        key = plan.item.idempotency_key
        if key is not None and key in taken:
            plan.result = _duplicate_of_stored(plan, taken[key])
        elif key is not None and key in first_by_key:
            _duplicate_in_batch(plan, first_by_key[key])
        else:
            _check(plan)
            if key is not None and plan.new is not None:
                first_by_key[key] = plan
    return plans


def _parsed_plan(index: int, raw: Any) -> _Plan:
    plan = _Plan(index)
    try:
        item = raw if isinstance(raw, EventItem) else item_from_tuple(raw)
        _check_event_type_text(item.event_type)
        _check_idempotency_key(item.idempotency_key)
        plan.ordering_key = _ordering_key(item.ordering_key)
        plan.channels = _channels(item.channels)
    except ItemRejected as rejected:
        plan.result = _rejected(index, rejected.code, rejected.detail, rejected.field)
        return plan
    plan.item = item
    return plan


def item_from_tuple(raw: Any) -> EventItem:
    """`(event_type, payload)` or `(event_type, payload, options)` as an EventItem; raises
    ItemRejected for anything else."""
    if not isinstance(raw, tuple | list) or len(raw) not in (2, 3):
        raise ItemRejected(
            RejectionCode.INVALID_ITEM,
            "An item is (event_type, payload) or (event_type, payload, options).",
        )
    options = raw[2] if len(raw) == 3 else {}
    if not isinstance(options, Mapping) or not set(options) <= ITEM_OPTIONS:
        raise ItemRejected(
            RejectionCode.INVALID_ITEM,
            "An item's options are a dict with idempotency_key, ordering_key and channels at most.",
        )
    return EventItem(
        event_type=raw[0], payload=raw[1],
        idempotency_key=options.get("idempotency_key"), ordering_key=options.get("ordering_key"),
        channels=options.get("channels"),
    )  # fmt: skip


def item_from_mapping(raw: Any, payload_text: str | None = None) -> EventItem:
    """An item written as the API's JSON object (`event_type`, `payload`, and optionally
    `idempotency_key`, `ordering_key` and `channels`) as an EventItem; raises ItemRejected
    otherwise."""
    if not isinstance(raw, Mapping):
        raise ItemRejected(RejectionCode.INVALID_ITEM, "An item is a JSON object.")
    unknown = sorted(set(raw) - ITEM_OPTIONS - {"event_type", "payload"})
    if unknown:
        raise ItemRejected(RejectionCode.INVALID_ITEM, f"Unknown field {str(unknown[0])!r}.")
    for name in ("event_type", "payload"):
        if name not in raw:
            raise ItemRejected(RejectionCode.INVALID_ITEM, f"{name} is required.", name)
    return EventItem(
        event_type=raw["event_type"], payload=raw["payload"], payload_text=payload_text,
        idempotency_key=raw.get("idempotency_key"), ordering_key=raw.get("ordering_key"),
        channels=raw.get("channels"),
    )  # fmt: skip


def _check_event_type_text(name: Any) -> None:
    if not isinstance(name, str):
        raise ItemRejected(RejectionCode.INVALID_ITEM, "The event type is a string.", "event_type")
    if len(name) > EVENT_TYPE_MAX_LENGTH:
        raise ItemRejected(
            RejectionCode.UNKNOWN_EVENT_TYPE,
            f"Unknown event type: no name is over {EVENT_TYPE_MAX_LENGTH} characters.",
            "event_type",
        )
    if not _is_text(name):
        raise ItemRejected(
            RejectionCode.UNKNOWN_EVENT_TYPE,
            "Unknown event type: the name holds an unpaired surrogate, which is not text.",
            "event_type",
        )


def _check_idempotency_key(key: Any) -> None:
    if key is None:
        return
    problem = None
    if not isinstance(key, str):
        problem = "An idempotency key is a string."
    elif not key:
        problem = "An idempotency key cannot be empty; leave it out for none."
    elif len(key) > IDEMPOTENCY_KEY_MAX_LENGTH:
        problem = f"An idempotency key is at most {IDEMPOTENCY_KEY_MAX_LENGTH} characters."
    elif "\x00" in key or not _is_text(key):
        problem = "An idempotency key cannot hold NUL or an unpaired surrogate."
    if problem:
        raise ItemRejected(RejectionCode.INVALID_IDEMPOTENCY_KEY, problem, "idempotency_key")


def _ordering_key(key: Any) -> str:
    try:
        return ordering_key_checked(key)
    except ValidationError as error:
        raise ItemRejected(
            RejectionCode.INVALID_ORDERING_KEY, error.messages[0], "ordering_key"
        ) from None


def _channels(channels: Any) -> tuple[str, ...]:
    try:
        return tuple(channels_checked(channels))
    except ValidationError as error:
        raise ItemRejected(RejectionCode.INVALID_CHANNELS, error.messages[0], "channels") from None


def _is_text(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _check(plan: _Plan) -> None:
    """Check the item as `send_event` would; make it ready to store, or rejected."""
    assert plan.item is not None
    item = plan.item
    try:
        kind = event_type_resolved(item.event_type)
        checked = payload_checked(kind, item.payload, item.payload_text)
    except EventError as error:
        code, field_name = _code_of(error)
        plan.result = _rejected(plan.index, code, str(error), field_name)
        return
    plan.new = NewEvent(
        event_type=kind, payload=item.payload, payload_json=checked.serialized,
        payload_text=checked.text, idempotency_key=item.idempotency_key,
        ordering_key=plan.ordering_key, channels=plan.channels,
    )  # fmt: skip


def _code_of(error: EventError) -> tuple[RejectionCode, str | None]:
    if isinstance(error, PayloadTooLargeError):
        return RejectionCode.PAYLOAD_TOO_LARGE, "payload"
    if isinstance(error, InvalidPayloadError):
        return RejectionCode.INVALID_PAYLOAD, "payload"
    if isinstance(error, UnknownEventTypeError):
        return RejectionCode.UNKNOWN_EVENT_TYPE, "event_type"
    if isinstance(error, InvalidOrderingKeyError):
        return RejectionCode.INVALID_ORDERING_KEY, "ordering_key"
    if isinstance(error, InvalidIdempotencyKeyError):
        return RejectionCode.INVALID_IDEMPOTENCY_KEY, "idempotency_key"
    if isinstance(error, InvalidChannelsError):
        return RejectionCode.INVALID_CHANNELS, "channels"
    return RejectionCode.INVALID_ITEM, None


def _events_by_key(tenant: Tenant, keys: set[str]) -> dict[str, Event]:
    if not keys:
        return {}
    found = Event.objects.filter(tenant=tenant, idempotency_key__in=keys).select_related(
        "event_type"
    )
    return {event.idempotency_key: event for event in found if event.idempotency_key}


def _duplicate_of_stored(plan: _Plan, first: Event) -> ItemResult:
    assert plan.item is not None
    same = (
        first.event_type.name == plan.item.event_type
        and first.ordering_key == plan.ordering_key
        and sorted(first.channels) == sorted(plan.channels)
        and _same_payload(first.payload, first.payload_text, plan.item)
    )
    if not same:
        return _conflict(plan.index)
    return ItemResult(plan.index, ItemStatus.DUPLICATE, event_id=first.public_id)


def _duplicate_in_batch(plan: _Plan, first: _Plan) -> None:
    assert plan.item is not None
    assert first.item is not None
    assert first.new is not None
    same = (
        first.item.event_type == plan.item.event_type
        and first.ordering_key == plan.ordering_key
        and sorted(first.channels) == sorted(plan.channels)
        and _same_payload(first.item.payload, first.new.payload_text, plan.item)
    )
    if same:
        plan.same_as = first.index
    else:
        plan.result = _conflict(plan.index)


def _same_payload(payload: Any, payload_text: str | None, item: EventItem) -> bool:
    """Whether `item` carries this payload: the same values, numbers compared exactly on the
    texts where both are kept (`1e308` parsed is a float; read back from jsonb, an integer)."""
    if payload_text is not None and item.payload_text is not None:
        return json_same(payload_text, item.payload_text)
    try:
        return same_json(payload, item.payload)
    except RecursionError:
        return False


def _conflict(index: int) -> ItemResult:
    return _rejected(
        index,
        RejectionCode.IDEMPOTENCY_CONFLICT,
        "This idempotency key was already used for a different event.",
        "idempotency_key",
    )


def _rejected(
    index: int, code: RejectionCode, detail: str, field_name: str | None = None
) -> ItemResult:
    return ItemResult(index, ItemStatus.REJECTED, code=code, field=field_name, detail=detail)


def _refuse_if_atomic(plans: list[_Plan], atomic: bool) -> None:
    refused = [plan.index for plan in plans if _is_rejected(plan.result)]
    if not atomic or not refused:
        return
    detail = f"Not stored: the batch is atomic, and the item at index {refused[0]} was rejected."
    raise _AtomicBatchRefused([
        plan.result if plan.result is not None and _is_rejected(plan.result)
        else _rejected(plan.index, RejectionCode.NOT_STORED, detail)
        for plan in plans
    ])  # fmt: skip


def _is_rejected(result: ItemResult | None) -> bool:
    return result is not None and result.status == ItemStatus.REJECTED


def _record_stored(tenant: Tenant, accepted: list[_Plan], batch: StoredBatch) -> None:
    """Each stored item's result. One whose key another call took meanwhile (the insert
    skipped it) is that call's duplicate, or rejected if that is another event."""
    raced = {}
    for plan, stored in zip(accepted, batch.items, strict=True):
        if stored is None:
            assert plan.new is not None
            assert plan.new.idempotency_key is not None
            raced[plan.new.idempotency_key] = plan
            continue
        plan.result = ItemResult(
            plan.index, ItemStatus.CREATED, event_id=stored.public_id, deliveries=stored.deliveries
        )
    taken = _events_by_key(tenant, set(raced))
    for key, plan in raced.items():
        first = taken.get(key)
        plan.result = _conflict(plan.index) if first is None else _duplicate_of_stored(plan, first)


def _results(plans: list[_Plan]) -> list[ItemResult]:
    results = []
    for plan in plans:
        if plan.same_as is not None:
            first = plans[plan.same_as].result
            assert first is not None
            plan.result = (
                replace(first, index=plan.index, status=ItemStatus.DUPLICATE, deliveries=None)
                if first.event_id is not None
                else replace(first, index=plan.index)
            )
        assert plan.result is not None
        results.append(plan.result)
    return results


def _after_commit(batch: StoredBatch) -> None:
    if batch.due:
        # Deliveries held behind an open circuit wait for its end: no worker could take them now.
        transaction.on_commit(wake_workers)
    if batch.waiting_keys:
        # What waits behind a delivery that finished meanwhile must not wait for nothing.
        transaction.on_commit(functools.partial(keys_advance_and_wake, batch.waiting_keys))


@dataclass(frozen=True)
class BatchCounts:
    created: int = 0
    duplicates: int = 0
    rejected: int = 0


def batch_counts(results: Sequence[ItemResult]) -> BatchCounts:
    """How many items were created, duplicates and rejected."""
    created = sum(1 for result in results if result.status == ItemStatus.CREATED)
    duplicates = sum(1 for result in results if result.status == ItemStatus.DUPLICATE)
    return BatchCounts(created, duplicates, len(results) - created - duplicates)
