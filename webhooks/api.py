"""REST API for emitting events and reading them back."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from config.api_errors import Conflict
from config.api_parsers import JSONParser
from config.api_types import JsonObjectField, JsonTypes
from deliveries.api import DeliverySerializer
from subscriptions.authentication import api_key_of
from webhooks.batch_api import (
    EventBatchCreateSerializer,
    EventBatchParser,
    EventBatchSerializer,
    events_batch_response,
    members_as_written,
)
from webhooks.models import Event
from webhooks.ordering_keys import (
    ORDERING_KEY_MAX_LENGTH,
    ORDERING_KEY_PATTERN,
    ORDERING_KEY_RULE,
)
from webhooks.payloads import json_same, same_json
from webhooks.services import event_send_idempotent

MAX_IDEMPOTENCY_KEY = 255


class EventBody(dict):
    """A request body's members, and the payload's JSON text as the host wrote it."""

    payload_text: str | None = None


class EventBodyParser(JSONParser):
    """Parses an event's request body, keeping the text of its `payload` member as written."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        values, texts = members_as_written(stream, parser_context)
        if not isinstance(values, dict):
            return values  # the serializer says what is wrong with it
        body = EventBody(values)
        body.payload_text = texts.get("payload")
        return body


class EventCreateSerializer(JsonTypes, serializers.Serializer):
    event_type = serializers.CharField(max_length=200)
    payload = serializers.DictField(help_text="A JSON object; becomes `data` in the webhook body.")
    idempotency_key = serializers.CharField(
        max_length=MAX_IDEMPOTENCY_KEY,
        required=False,
        help_text="Or send an Idempotency-Key header.",
    )
    ordering_key = serializers.RegexField(
        ORDERING_KEY_PATTERN,
        max_length=ORDERING_KEY_MAX_LENGTH,
        required=False,
        allow_blank=True,
        trim_whitespace=False,  # " ord_1" is refused, not quietly made another key
        error_messages={"invalid": ORDERING_KEY_RULE},
        help_text="Deliveries to each endpoint of events with the same key are attempted one at a "
        "time, in the order the events were emitted. 1 to 128 visible ASCII characters.",
    )


class EventSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id")
    event_type = serializers.CharField(source="event_type.name")
    payload = JsonObjectField(
        source="payload_as_sent", read_only=True, help_text="The payload as the host sent it."
    )

    class Meta:
        model = Event
        fields = ["id", "event_type", "payload", "idempotency_key", "ordering_key", "created_at"]


class EventCreatedSerializer(EventSerializer):
    deliveries = serializers.IntegerField(source="deliveries.count")

    class Meta(EventSerializer.Meta):
        fields = [*EventSerializer.Meta.fields, "deliveries"]


class EventDetailSerializer(EventSerializer):
    deliveries = DeliverySerializer(many=True)

    class Meta(EventSerializer.Meta):
        fields = [*EventSerializer.Meta.fields, "deliveries"]


class EventViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Emit events for the calling key's tenant, and read one back with its deliveries."""

    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    serializer_class = EventDetailSerializer
    parser_classes = [EventBodyParser]

    def get_queryset(self) -> QuerySet[Event]:
        if getattr(self, "swagger_fake_view", False):  # OpenAPI generation has no API key
            return Event.objects.none()
        return (
            Event.objects.filter(tenant=api_key_of(self.request).tenant)
            .select_related("event_type")
            .prefetch_related("deliveries__event__event_type")
        )

    @extend_schema(
        request=EventCreateSerializer,
        responses={202: EventCreatedSerializer},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)],
    )
    def create(self, request: Request) -> Response:
        """Emit an event: one delivery per subscribed endpoint. A repeated idempotency key
        returns the first event (with `Idempotent-Replayed: true`) and sends nothing."""
        params = EventCreateSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        wanted = params.validated_data
        key = wanted.get("idempotency_key") or _idempotency_header(request)
        # The insert decides who owns a key; a lookup first would race with a concurrent POST.
        payload_text = getattr(request.data, "payload_text", None)
        event, created = event_send_idempotent(
            tenant=api_key_of(request).tenant,
            event_type=wanted["event_type"],
            payload=wanted["payload"],
            payload_text=payload_text,
            idempotency_key=key,
            ordering_key=wanted.get("ordering_key"),
        )
        if not created:
            return _replayed(event, wanted, payload_text)
        return Response(EventCreatedSerializer(event).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=EventBatchCreateSerializer, responses={200: EventBatchSerializer})
    @action(detail=False, methods=["post"], url_path="batch", parser_classes=[EventBatchParser])
    def batch(self, request: Request) -> Response:
        """Emit up to 500 events in one transaction: 200 with a result per item, in order
        (created, duplicate of an earlier event with its idempotency key, or rejected with a
        code and why). A rejected item rejects nothing else, unless `atomic` is true."""
        return events_batch_response(request)


def _idempotency_header(request: Request) -> str | None:
    key = request.headers.get("Idempotency-Key") or None
    if key is not None and len(key) > MAX_IDEMPOTENCY_KEY:
        raise serializers.ValidationError(
            {"idempotency_key": [f"The Idempotency-Key is over {MAX_IDEMPOTENCY_KEY} characters."]}
        )
    if key is not None and "\x00" in key:
        # Most servers refuse it in a header; one that does not must not carry it to PostgreSQL.
        raise serializers.ValidationError(
            {"idempotency_key": ["The Idempotency-Key cannot contain the NUL character."]}
        )
    return key


def _replayed(first: Event, wanted: dict, payload_text: str | None) -> Response:
    same = (
        first.event_type.name == wanted["event_type"]
        and first.ordering_key == (wanted.get("ordering_key") or "")
        and _same_payload(first, wanted["payload"], payload_text)
    )
    if not same:
        raise Conflict("This idempotency key was already used for a different event.")
    response = Response(EventCreatedSerializer(first).data, status=status.HTTP_202_ACCEPTED)
    response["Idempotent-Replayed"] = "true"
    return response


def _same_payload(first: Event, payload: dict, payload_text: str | None) -> bool:
    """Whether a repeated request carries the first one's payload.

    The same value, compared on the texts where both are kept: `1e308` is a float once parsed and
    a 309-digit integer once read back from `jsonb`, so comparing those would call it different.
    """
    if first.payload_text is None or payload_text is None:
        return same_json(first.payload, payload)
    return json_same(first.payload_text, payload_text)
