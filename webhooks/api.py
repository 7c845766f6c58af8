"""REST API for emitting events and reading them back."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from config.api_errors import Conflict
from config.api_types import JsonTypes
from deliveries.api import DeliverySerializer
from webhooks.models import Event
from webhooks.payloads import same_json
from webhooks.services import event_send_idempotent

MAX_IDEMPOTENCY_KEY = 255


class EventCreateSerializer(JsonTypes, serializers.Serializer):
    event_type = serializers.CharField(max_length=200)
    payload = serializers.DictField(help_text="A JSON object; becomes `data` in the webhook body.")
    idempotency_key = serializers.CharField(
        max_length=MAX_IDEMPOTENCY_KEY,
        required=False,
        help_text="Or send an Idempotency-Key header.",
    )


class EventSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id")
    event_type = serializers.CharField(source="event_type.name")

    class Meta:
        model = Event
        fields = ["id", "event_type", "payload", "idempotency_key", "created_at"]


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

    def get_queryset(self) -> QuerySet[Event]:
        if getattr(self, "swagger_fake_view", False):  # OpenAPI generation has no API key
            return Event.objects.none()
        return (
            Event.objects.filter(tenant=self.request.auth.tenant)
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
        event, created = event_send_idempotent(
            tenant=request.auth.tenant,
            event_type=wanted["event_type"],
            payload=wanted["payload"],
            idempotency_key=key,
        )
        if not created:
            return _replayed(event, wanted)
        return Response(EventCreatedSerializer(event).data, status=status.HTTP_202_ACCEPTED)


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


def _replayed(first: Event, wanted: dict) -> Response:
    same = first.event_type.name == wanted["event_type"] and same_json(
        first.payload, wanted["payload"]
    )
    if not same:
        raise Conflict("This idempotency key was already used for a different event.")
    response = Response(EventCreatedSerializer(first).data, status=status.HTTP_202_ACCEPTED)
    response["Idempotent-Replayed"] = "true"
    return response
