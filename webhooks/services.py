"""Emitting events: validation, the Event row, and one Delivery per subscribed endpoint."""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from config import tracing
from deliveries.bulk import StoredEvent, event_insert_with_deliveries
from deliveries.dispatch import wake_workers
from deliveries.models import Delivery
from deliveries.ordering import keys_advance_and_wake
from deliveries.selectors import pending_test_sends_count
from deliveries.services import delivery_create_test
from subscriptions.catalog import event_type_by_name, event_types_forget
from subscriptions.channels import channels_checked
from subscriptions.models import (
    TEST_EVENT_TYPE,
    VERIFICATION_EVENT_TYPE,
    Endpoint,
    EventType,
    Tenant,
)
from webhooks.emit_quota import emit_quota_take
from webhooks.errors import (
    EndpointUnverifiedError,
    InvalidChannelsError,
    InvalidOrderingKeyError,
    InvalidPayloadError,
    PayloadTooLargeError,
    TenantInactiveError,
    TooManyTestSendsError,
    UnknownEventTypeError,
    UnknownTenantError,
)
from webhooks.models import Event
from webhooks.ordering_keys import ordering_key_checked
from webhooks.payloads import contains_nul, json_compact
from webhooks.schemas import schema_validator

logger = logging.getLogger(__name__)

EMIT_SPAN = "hookline.send_event"
TEST_SEND_SPAN = "hookline.send_test_event"

UNVERIFIED_NO_TEST = (
    "The endpoint has not echoed its ownership challenge yet, so it receives nothing else, test "
    "events included; make the receiver answer the challenge, then send a new one."
)


def event_send(
    *,
    tenant: Tenant | str,
    event_type: str,
    payload: dict[str, Any],
    payload_text: str | None = None,
    idempotency_key: str | None = None,
    ordering_key: str | None = None,
    channels: Sequence[str] | None = None,
) -> Event:
    """Store an event and one pending delivery per subscribed active endpoint whose filter, if it
    has one, matches the event (subscriptions.filters), in one transaction. With `channels`, only
    the endpoints that share one of them are sent the event (subscriptions.channels).

    Receivers get the payload's JSON text as `data`: `payload_text` when given (the JSON text that
    `payload` was parsed from, as the host wrote it; whitespace between tokens is dropped, all
    else kept), otherwise `payload` serialised once, compact and UTF-8.
    Workers are woken once the transaction commits; a rolled-back caller sends nothing. A repeated
    `idempotency_key` for the same tenant returns the first event and creates nothing.
    Deliveries to one endpoint of events with the same `ordering_key` are attempted one at a
    time, in the order of their `send_event` calls (deliveries.ordering).
    Raises an `EventError` subclass (nothing stored) for an unknown or deactivated tenant
    (TenantInactiveError), a tenant over its `max_events_per_second` (EmitQuotaExceededError,
    with `retry_after`; webhooks.emit_quota), an unknown event type, a payload that is not a
    JSON object, fails the type's schema, or is over the size limit, an ordering key that is
    not 1 to 128 visible ASCII characters, or channels that break
    `subscriptions.channels.CHANNEL_RULE`.
    """
    event, _ = event_send_idempotent(
        tenant=tenant,
        event_type=event_type,
        payload=payload,
        payload_text=payload_text,
        idempotency_key=idempotency_key,
        ordering_key=ordering_key,
        channels=channels,
    )
    return event


def event_send_idempotent(
    *,
    tenant: Tenant | str,
    event_type: str,
    payload: dict[str, Any],
    payload_text: str | None = None,
    idempotency_key: str | None = None,
    ordering_key: str | None = None,
    channels: Sequence[str] | None = None,
) -> tuple[Event, bool]:
    """`event_send`, telling also whether this call stored the event.

    False means the idempotency key was taken, and the event is the first one stored with it,
    whatever its type and payload: the caller compares. The database decides, not a lookup
    beforehand: of concurrent calls with one key, exactly one inserts (the unique constraint
    with ON CONFLICT DO NOTHING), and every other one gets False and the winner's event.
    """
    spans = tracing.spans
    arguments = _Emit(
        tenant, event_type, payload, payload_text, idempotency_key, ordering_key,
        _channels_checked(channels),
    )  # fmt: skip
    if spans is None:
        return _send_idempotent(arguments, traceparent="")
    tenant_name = tenant if isinstance(tenant, str) else tenant.slug
    attributes = {"hookline.tenant": tenant_name, "hookline.event_type": event_type}
    with spans.emit(EMIT_SPAN, attributes) as span:
        event, created = _send_idempotent(arguments, traceparent=spans.traceparent(span))
        # A duplicate: the idempotency key was taken, and nothing was stored.
        span.set_attributes(
            {"hookline.event_id": event.public_id, "hookline.duplicate": not created}
        )
    return event, created


@dataclass(frozen=True)
class _Emit:
    tenant: Tenant | str
    event_type: str
    payload: dict[str, Any]
    payload_text: str | None
    idempotency_key: str | None
    ordering_key: str | None
    channels: list[str]


def _send_idempotent(emit: _Emit, *, traceparent: str) -> tuple[Event, bool]:
    tenant = tenant_resolved(emit.tenant)
    emit_quota_take(tenant=tenant, events=1)
    key = _ordering_key_checked(emit.ordering_key)
    if emit.idempotency_key is not None:
        existing = _event_by_idempotency_key(tenant, emit.idempotency_key)
        if existing is not None:
            return existing, False
    stored = _store(tenant, emit, key, traceparent)
    if not stored.event_type_current:
        # The cached event type changed meanwhile: look it up afresh, and check again.
        event_types_forget()
        stored = _store(tenant, emit, key, traceparent)
    if stored.event is None:
        # Another call with the same idempotency key stored its event first.
        existing = _event_by_idempotency_key(tenant, emit.idempotency_key)
        if existing is None:
            raise UnknownEventTypeError(f"Event type {emit.event_type!r} changed; try again.")
        return existing, False
    if stored.due:
        # Deliveries held behind an open circuit wait for its end: no worker could take them now.
        transaction.on_commit(wake_workers)
    if stored.waiting_endpoint_ids:
        # What waits behind a delivery that finished meanwhile must not wait for nothing.
        waiting = [(endpoint_id, key) for endpoint_id in stored.waiting_endpoint_ids]
        transaction.on_commit(functools.partial(keys_advance_and_wake, waiting))
    return stored.event, True


def _channels_checked(channels: Any) -> list[str]:
    try:
        return channels_checked(channels)
    except ValidationError as error:
        raise InvalidChannelsError(error.messages[0]) from None


def _ordering_key_checked(key: str | None) -> str:
    try:
        return ordering_key_checked(key)
    except ValidationError as error:
        raise InvalidOrderingKeyError(error.messages[0]) from None


def _store(tenant: Tenant, emit: _Emit, ordering_key: str, traceparent: str) -> StoredEvent:
    kind = event_type_resolved(emit.event_type)
    checked = payload_checked(kind, emit.payload, emit.payload_text)
    return event_insert_with_deliveries(
        tenant=tenant,
        event_type=kind,
        payload=emit.payload,
        payload_json=checked.serialized,
        payload_text=checked.text,
        idempotency_key=emit.idempotency_key,
        ordering_key=ordering_key,
        channels=emit.channels,
        traceparent=traceparent,
    )


def event_send_test(
    *, endpoint: Endpoint, event_type: str = TEST_EVENT_TYPE, payload: dict[str, Any] | None = None
) -> Delivery:
    """Store a test event for `endpoint` alone and return its delivery, which a worker attempts.

    The same validation as `event_send` applies, and raises the same errors. A tenant has at most
    WEBHOOKS_TEST_SENDS_PER_TENANT test deliveries waiting for their attempt; past that,
    TooManyTestSendsError, and nothing is stored. An endpoint that has not echoed its ownership
    challenge yet gets no test event: EndpointUnverifiedError. Follow the attempt with
    `deliveries.selectors.attempts_wait`.
    """
    if endpoint.verified_at is None:
        raise EndpointUnverifiedError(UNVERIFIED_NO_TEST)
    if event_type == TEST_EVENT_TYPE:
        # Made by a migration; re-created should anyone have deleted it.
        EventType.objects.get_or_create(
            name=TEST_EVENT_TYPE,
            defaults={"description": "A test message sent from Hookline on request."},
        )
    kind = event_type_resolved(event_type)
    if payload is None:
        payload = {"message": "A test message from Hookline.", "endpoint_id": endpoint.id}
    checked = payload_checked(kind, payload, None)
    spans = tracing.spans
    if spans is None:
        return _test_send_store(endpoint, kind, payload, checked, traceparent="")
    attributes: dict[str, str | int] = {
        "hookline.endpoint_id": endpoint.id,
        "hookline.event_type": kind.name,
    }
    with spans.emit(TEST_SEND_SPAN, attributes) as span:
        return _test_send_store(endpoint, kind, payload, checked, spans.traceparent(span))


def _test_send_store(
    endpoint: Endpoint,
    kind: EventType,
    payload: dict[str, Any],
    checked: CheckedPayload,
    traceparent: str,
) -> Delivery:
    with transaction.atomic():
        _test_sends_reserve(endpoint.tenant_id)
        event = Event.objects.create(
            tenant_id=endpoint.tenant_id,
            event_type=kind,
            payload=payload,
            payload_text=checked.text,
            traceparent=traceparent,
        )
        return delivery_create_test(event=event, endpoint=endpoint)


def _test_sends_reserve(tenant_id: int) -> None:
    """Raise TooManyTestSendsError if the tenant's test sends are all taken (call in a transaction).

    The tenant's row is locked until the caller commits, so that requests arriving together are
    counted one after the other and cannot all take the last place.
    """
    list(Tenant.objects.select_for_update().filter(id=tenant_id).values_list("id", flat=True))
    limit = settings.WEBHOOKS_TEST_SENDS_PER_TENANT
    if pending_test_sends_count(tenant_id=tenant_id) >= limit:
        raise TooManyTestSendsError(
            f"{limit} test events are already waiting to be sent for this tenant; "
            "try again once they are (WEBHOOKS_TEST_SENDS_PER_TENANT).",
            retry_after=math.ceil(settings.WEBHOOKS_TIMEOUT),
        )


def tenant_resolved(tenant: Tenant | str) -> Tenant:
    """The active tenant `tenant` is or names; raises UnknownTenantError when there is none, and
    TenantInactiveError when it was deactivated."""
    found = tenant if isinstance(tenant, Tenant) else Tenant.objects.filter(slug=tenant).first()
    if found is None:
        raise UnknownTenantError(f"No active tenant with slug {tenant!r}.")
    if not found.is_active:
        raise TenantInactiveError(
            f"Tenant {found.slug!r} is not active: it was deactivated, and accepts no events "
            "until it is activated again."
        )
    return found


def event_type_resolved(name: str) -> EventType:
    """The event type called `name`; raises UnknownEventTypeError if there is none, it is
    archived, or it is Hookline's own ownership challenge."""
    if name == VERIFICATION_EVENT_TYPE:
        # Only Hookline sends it, with a challenge of its own, to one endpoint at a time.
        raise UnknownEventTypeError(
            f"Event type {name!r} is Hookline's ownership challenge; it is never emitted or sent "
            "as a test event."
        )
    kind = event_type_by_name(name)
    if kind is None:
        raise UnknownEventTypeError(
            f"Unknown event type {name!r}: add it to the event-type catalog first."
        )
    if kind.archived:
        raise UnknownEventTypeError(f"Event type {name!r} is archived and accepts no new events.")
    return kind


def _event_by_idempotency_key(tenant: Tenant, key: str | None) -> Event | None:
    return Event.objects.filter(tenant=tenant, idempotency_key=key).first()


@dataclass(frozen=True)
class CheckedPayload:
    serialized: str  # the parsed payload as compact JSON, for the jsonb column
    text: str  # what receivers get as `data`


def payload_checked(kind: EventType, payload: Any, payload_text: str | None) -> CheckedPayload:
    """The payload's two JSON forms, once it passed every check; raises InvalidPayloadError (or
    PayloadTooLargeError) naming the first it fails."""
    if not isinstance(payload, dict):
        raise InvalidPayloadError(
            f"The payload must be a JSON object, not {type(payload).__name__}."
        )
    serialized = _serialize(payload)
    text = serialized if payload_text is None else json_compact(payload_text)
    try:
        serialized.encode()
    except UnicodeEncodeError:
        # JSON's "\ud800" escapes decode to lone surrogates, which no UTF-8 body can carry.
        raise InvalidPayloadError(
            "The payload holds an unpaired surrogate (such as \\ud800), which is not text."
        ) from None
    size = len(text.encode())  # the bytes receivers get
    limit = settings.WEBHOOKS_MAX_PAYLOAD_BYTES
    if size > limit:
        raise PayloadTooLargeError(f"The payload is {size} bytes; the limit is {limit} bytes.")
    if kind.schema:
        _check_schema(kind, payload)
    return CheckedPayload(serialized=serialized, text=text)


def _serialize(payload: dict[str, Any]) -> str:
    try:
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InvalidPayloadError(f"The payload is not JSON-serialisable: {error}.") from None
    except RecursionError:
        raise InvalidPayloadError("The payload is nested too deeply.") from None
    if contains_nul(payload):
        # PostgreSQL's JSON type cannot store it, and many receivers choke on it.
        raise InvalidPayloadError("The payload cannot contain the NUL character (\\u0000).")
    return text


def _check_schema(kind: EventType, payload: dict[str, Any]) -> None:
    try:
        errors = _schema_validator(json.dumps(kind.schema)).iter_errors(payload)
        error = jsonschema.exceptions.best_match(errors)
    except jsonschema.exceptions.ValidationError:
        raise
    except Exception as problem:  # a schema that checks but cannot be applied, e.g. a bad $ref
        raise InvalidPayloadError(
            f"The payload cannot be checked: the schema of {kind.name!r} is broken ({problem})."
        ) from None
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        raise InvalidPayloadError(
            f"The payload does not match the schema of {kind.name!r} at {where}: {error.message}"
        )


@functools.lru_cache(maxsize=256)
def _schema_validator(schema_json: str) -> jsonschema.protocols.Validator:
    # Offline: a reference outside the schema (stored before such schemas were refused) fails
    # the check instead of fetching a URL or reading a file.
    return schema_validator(json.loads(schema_json))
