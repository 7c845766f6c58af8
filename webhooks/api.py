"""REST API for emitting events, listing and searching them, and reading one back."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor
from rest_framework.request import Request
from rest_framework.response import Response

from config.api_errors import Conflict
from config.api_parsers import JSONParser
from config.api_schema import NO_NUL
from config.api_types import JsonObjectField, JsonTypes
from deliveries.api import DeliveryCursorPagination, DeliverySerializer
from subscriptions.authentication import api_key_of
from subscriptions.channels import channels_api_field
from webhooks.batch_api import (
    EventBatchCreateSerializer,
    EventBatchParser,
    EventBatchSerializer,
    events_batch_response,
    members_as_written,
)
from webhooks.event_search import (
    MAX_VALUE_LENGTH,
    PARAMETER_PATTERN,
    PATH_RULE,
    PayloadFilterError,
    events_matching,
    payload_match_parsed,
    payload_parameters,
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
    channels = channels_api_field(
        required=False,
        help_text="The event reaches only the endpoints that share one of these channels; "
        "none: every subscribed endpoint.",
    )


class EventSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id")
    event_type = serializers.CharField(source="event_type.name")
    payload = JsonObjectField(
        source="payload_as_sent", read_only=True, help_text="The payload as the host sent it."
    )

    class Meta:
        model = Event
        fields = [
            "id", "event_type", "payload", "idempotency_key", "ordering_key", "channels",
            "created_at",
        ]  # fmt: skip


class EventCreatedSerializer(EventSerializer):
    deliveries = serializers.IntegerField(source="deliveries.count")

    class Meta(EventSerializer.Meta):
        fields = [*EventSerializer.Meta.fields, "deliveries"]


class EventDetailSerializer(EventSerializer):
    deliveries = DeliverySerializer(many=True)

    class Meta(EventSerializer.Meta):
        fields = [*EventSerializer.Meta.fields, "deliveries"]


class EventFilterSerializer(serializers.Serializer):
    event_type = serializers.CharField(required=False, max_length=200)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)
    idempotency_key = serializers.CharField(required=False, max_length=MAX_IDEMPOTENCY_KEY)


PAYLOAD_FILTER = OpenApiParameter(
    "data",
    {
        "type": "object",
        "maxProperties": 1,
        "propertyNames": {"pattern": PARAMETER_PATTERN, "description": PATH_RULE},
        "additionalProperties": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_VALUE_LENGTH,
            "pattern": NO_NUL,
        },  # fmt: skip
    },
    OpenApiParameter.QUERY,
    style="form",
    explode=True,
    description="One payload value to look for, as `data.<path>=<value>` (such as "
    "`data.order_id=ord_1001` or `data.customer.id=42`): the events whose payload holds it at "
    "that path. The value matches as a JSON string, and also as the number, true, false or "
    f"null it spells. {PATH_RULE}",
)


class EventCursorPagination(DeliveryCursorPagination):
    # Newest first; the (tenant, created_at, id) indexes keep every page a short index scan.
    ordering = ("-created_at", "-id")

    def decode_cursor(self, request: Request) -> Cursor | None:
        cursor = super(DeliveryCursorPagination, self).decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            try:
                valid = parse_datetime(str(cursor.position)) is not None
            except ValueError:  # the right shape, out of range
                valid = False
            if not valid:
                raise NotFound(self.invalid_cursor_message)
        return cursor


@extend_schema_view(list=extend_schema(parameters=[EventFilterSerializer, PAYLOAD_FILTER]))
class EventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Emit events for the calling key's tenant, list and search them, and read one back with
    its deliveries."""

    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    parser_classes = [EventBodyParser]
    pagination_class = EventCursorPagination

    def get_serializer_class(self) -> type[serializers.Serializer]:
        return EventSerializer if self.action == "list" else EventDetailSerializer

    def get_queryset(self) -> QuerySet[Event]:
        if getattr(self, "swagger_fake_view", False):  # OpenAPI generation has no API key
            return Event.objects.none()
        events = Event.objects.filter(tenant=api_key_of(self.request).tenant)
        events = events.select_related("event_type")
        if self.action == "list":
            return _filtered(events, self.request)
        return events.prefetch_related("deliveries__event__event_type")

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The tenant's events, newest first, filtered by type, time, idempotency key and one
        payload value (`data.<path>=<value>`)."""
        return super().list(request, *args, **kwargs)

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
            channels=wanted.get("channels"),
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


def _filtered(events: QuerySet[Event], request: Request) -> QuerySet[Event]:
    # A plain dict, not the QueryDict: an empty value is then a 400, not "left out".
    params = EventFilterSerializer(data=request.query_params.dict())
    params.is_valid(raise_exception=True)
    wanted = params.validated_data
    lookups = {
        # Through the name: the catalog is global, and the same name is the same type for all.
        "event_type": "event_type__name",
        "created_after": "created_at__gte",
        "created_before": "created_at__lt",
        "idempotency_key": "idempotency_key",
    }
    events = events.filter(**{lookups[name]: value for name, value in wanted.items()})
    searched = payload_parameters(list(request.query_params))
    if not searched:
        return events
    if len(searched) > 1 or len(request.query_params.getlist(searched[0])) > 1:
        raise serializers.ValidationError({"data": ["Give one payload filter at most."]})
    try:
        match = payload_match_parsed(searched[0], request.query_params[searched[0]])
    except PayloadFilterError as error:
        raise serializers.ValidationError({searched[0]: [str(error)]}) from None
    return events_matching(events, match)


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
        and sorted(first.channels) == sorted(set(wanted.get("channels") or []))
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
