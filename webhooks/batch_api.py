"""`POST /api/v1/events/batch/`: up to 500 events in one request, with a result for each.

What the OpenAPI schema states about an item (JSON types, required fields, lengths, the ordering
key's pattern) is checked for the whole request: a request breaking it is a 400 that stores
nothing. What only the data can judge (an unknown or archived type, a payload failing its type's
schema or over the size limit, an idempotency key taken by another event) rejects that item
alone, in its result (webhooks.batches).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.request import Request
from rest_framework.response import Response

from config.api_parsers import JSONParser, refuse_lone_surrogates
from config.api_types import JsonTypes
from subscriptions.authentication import api_key_of
from subscriptions.channels import channels_api_field
from webhooks.batches import (
    IDEMPOTENCY_KEY_MAX_LENGTH,
    MAX_BATCH_EVENTS,
    EventItem,
    ItemResult,
    ItemStatus,
    RejectionCode,
    batch_counts,
    events_send,
)
from webhooks.ordering_keys import ORDERING_KEY_MAX_LENGTH, ORDERING_KEY_PATTERN, ORDERING_KEY_RULE
from webhooks.payloads import json_array_items, json_object_members


class TooManyEvents(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_many_events"


class EventBatchBody(dict):
    """A batch request's members, and each item's payload as the host wrote it (None where an
    item is not an object or has no payload)."""

    payload_texts: list[str | None] | None = None


def members_as_written(stream: Any, parser_context: Any) -> tuple[Any, dict[str, str]]:
    """A JSON request body, parsed, and the text of each of its members as written (when it is
    an object); raises ParseError for a body that is not JSON or holds a lone surrogate."""
    encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
    raw = stream.read() if stream is not None else b""
    try:
        values, texts = json_object_members(raw.decode(encoding))
    except ValueError as error:  # UnicodeDecodeError and JSONDecodeError among them
        raise ParseError(f"JSON parse error - {error}") from None
    except RecursionError:
        raise ParseError("JSON parse error - the document is nested too deeply.") from None
    refuse_lone_surrogates(raw, values, parser_context)
    return values, texts


class EventBatchParser(JSONParser):
    """Parses a batch, keeping the text of each item's `payload` member as written."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        values, texts = members_as_written(stream, parser_context)
        if not isinstance(values, dict):
            return values  # the serializer says what is wrong with it
        body = EventBatchBody(values)
        events = values.get("events")
        if isinstance(events, list) and len(events) <= MAX_BATCH_EVENTS:
            body.payload_texts = _payload_texts(texts["events"])
        return body


def _payload_texts(events_text: str) -> list[str | None]:
    return [
        json_object_members(text)[1].get("payload") if isinstance(value, dict) else None
        for value, text in json_array_items(events_text)
    ]


class EventBatchItemSerializer(JsonTypes, serializers.Serializer):
    """One event of a batch."""

    event_type = serializers.CharField(max_length=200)
    payload = serializers.DictField(help_text="A JSON object; becomes `data` in the webhook body.")
    idempotency_key = serializers.CharField(
        max_length=IDEMPOTENCY_KEY_MAX_LENGTH,
        required=False,
        help_text="A key used before, in this batch or earlier, makes the item a duplicate of "
        "that event (or rejects it, if that was a different event).",
    )
    ordering_key = serializers.RegexField(
        ORDERING_KEY_PATTERN,
        max_length=ORDERING_KEY_MAX_LENGTH,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        error_messages={"invalid": ORDERING_KEY_RULE},
        help_text="Events with the same key reach each endpoint in the order of the batch.",
    )
    channels = channels_api_field(
        required=False,
        help_text="The event reaches only the endpoints that share one of these channels; "
        "none: every subscribed endpoint.",
    )


class EventBatchCreateSerializer(JsonTypes, serializers.Serializer):
    """Events to emit in one transaction."""

    events = serializers.ListField(
        child=EventBatchItemSerializer(),
        max_length=MAX_BATCH_EVENTS,
        help_text=f"At most {MAX_BATCH_EVENTS} events (more is a 413), stored in this order.",
    )
    atomic = serializers.BooleanField(
        default=False,
        help_text="If true, one rejected item stores nothing at all; otherwise each item stands "
        "alone.",
    )


class EventBatchResultSerializer(serializers.Serializer):
    """What became of one item."""

    index = serializers.IntegerField(help_text="The item's place in `events`, from 0.")
    status = serializers.ChoiceField(choices=[(s.value, s.name) for s in ItemStatus])
    id = serializers.CharField(
        allow_null=True,
        help_text="The event created, or the earlier one this item duplicates; null if rejected.",
    )
    deliveries = serializers.IntegerField(
        allow_null=True, help_text="Deliveries created, for a created event; otherwise null."
    )
    code = serializers.ChoiceField(
        choices=[(c.value, c.name) for c in RejectionCode], allow_null=True
    )
    field = serializers.CharField(allow_null=True, help_text="The item's field at fault, if one.")
    detail = serializers.CharField(allow_null=True, help_text="Why it was rejected.")


class EventBatchSerializer(serializers.Serializer):
    """A batch's results: how many items were created, duplicates or rejected, and each one's."""

    atomic = serializers.BooleanField()
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = EventBatchResultSerializer(many=True)


def events_batch_response(request: Request) -> Response:
    """Send the request's batch for the key's tenant; 200 with a result per item."""
    count = _events_count(request.data)
    if count > MAX_BATCH_EVENTS:
        raise TooManyEvents(
            f"The batch holds {count} events; at most {MAX_BATCH_EVENTS} are accepted at once: "
            "split it into several."
        )
    params = EventBatchCreateSerializer(data=request.data)
    params.is_valid(raise_exception=True)
    wanted = params.validated_data
    texts = getattr(request.data, "payload_texts", None) or []
    items = [
        EventItem(
            event_type=item["event_type"], payload=item["payload"],
            idempotency_key=item.get("idempotency_key"),
            ordering_key=item.get("ordering_key") or None, channels=item.get("channels"),
            payload_text=texts[index] if index < len(texts) else None,
        )
        for index, item in enumerate(wanted["events"])
    ]  # fmt: skip
    results = events_send(tenant=api_key_of(request).tenant, items=items, atomic=wanted["atomic"])
    return Response(batch_body(results, atomic=wanted["atomic"]), status=status.HTTP_200_OK)


def _events_count(data: Any) -> int:
    events = data.get("events") if isinstance(data, dict) else None
    return len(events) if isinstance(events, list) else 0


def batch_body(results: Sequence[ItemResult], *, atomic: bool) -> dict[str, Any]:
    """The response: the counts, and each item's result (as EventBatchSerializer describes)."""
    counts = batch_counts(results)
    return {
        "atomic": atomic,
        "created": counts.created,
        "duplicates": counts.duplicates,
        "rejected": counts.rejected,
        "results": [
            {
                "index": result.index, "status": result.status.value, "id": result.event_id,
                "deliveries": result.deliveries,
                "code": result.code.value if result.code is not None else None,
                "field": result.field, "detail": result.detail,
            }
            for result in results
        ],
    }  # fmt: skip
