"""REST API for deliveries (list, detail with attempts, replay) and replay jobs."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api_errors import Conflict
from config.api_types import JsonObjectField
from deliveries.models import Attempt, Delivery, ReplayJob
from deliveries.ordering import delivery_blocked_by
from deliveries.services import deliveries_replay
from subscriptions.authentication import api_key_of
from webhooks.ordering_keys import ORDERING_KEY_MAX_LENGTH


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = Attempt
        fields = [
            "number",
            "trigger",
            "started_at",
            "duration_ms",
            "url",
            "request_headers",
            "response_status",
            "response_headers",
            "response_body",
            "error_kind",
            "error_message",
        ]


class DeliverySerializer(serializers.ModelSerializer):
    event_id = serializers.CharField(source="event.public_id")
    event_type = serializers.CharField(source="event.event_type.name")

    class Meta:
        model = Delivery
        fields = [
            "id",
            "event_id",
            "event_type",
            "endpoint_id",
            "status",
            "attempt_count",
            "next_attempt_at",
            "last_response_status",
            "last_error",
            "created_at",
            "finished_at",
            "ordering_key",
            "waiting_on_key",
        ]


class DeliveryDetailSerializer(DeliverySerializer):
    payload = JsonObjectField(source="event.payload_as_sent", read_only=True)
    attempts = AttemptSerializer(many=True)
    blocked_by = serializers.SerializerMethodField(
        help_text="The id of the delivery of the same ordering key that this one waits behind "
        "(the key's head); null when it waits for none."
    )

    class Meta(DeliverySerializer.Meta):
        fields = [*DeliverySerializer.Meta.fields, "blocked_by", "payload", "attempts"]

    def get_blocked_by(self, delivery: Delivery) -> int | None:
        return delivery_blocked_by(delivery)


class DeliveryFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Delivery.Status.choices, required=False)
    endpoint = serializers.IntegerField(required=False, min_value=1)
    event_type = serializers.CharField(required=False, max_length=200)
    ordering_key = serializers.CharField(required=False, max_length=ORDERING_KEY_MAX_LENGTH)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)


class DeliveryCursorPagination(CursorPagination):
    # Keyset pagination on the primary key: no COUNT(*), constant cost at any depth.
    ordering: str | tuple[str, ...] = "-id"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200

    def get_paginated_response(self, data: list) -> Response:
        """DRF's page, plus each link's cursor on its own: what a client passes back as `cursor`."""
        response = super().get_paginated_response(data)
        for link in ("next", "previous"):
            url = response.data[link]
            response.data[f"{link}_cursor"] = _query_value(url, self.cursor_query_param)
        return response

    def get_paginated_response_schema(self, schema: dict) -> dict:
        page = super().get_paginated_response_schema(schema)
        for link in ("next", "previous"):
            page["properties"][f"{link}_cursor"] = {
                "type": "string",
                "nullable": True,
                "description": f"Pass as `cursor` for the {link} page; null when there is none.",
            }
        return page

    def get_page_size(self, request: Request) -> int:
        """`limit` as the schema states it: a whole number from 1 to max_page_size, or a 400."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= self.max_page_size:
            message = f"Give a whole number from 1 to {self.max_page_size}."
            raise ValidationError({self.page_size_query_param: [message]})
        return int(raw)

    def get_schema_operation_parameters(self, view: APIView) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
        return parameters

    def decode_cursor(self, request: Request) -> Cursor | None:
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            try:
                int(cursor.position)
            except (TypeError, ValueError):
                raise NotFound(self.invalid_cursor_message) from None
        return cursor


def _query_value(url: str | None, name: str) -> str | None:
    if url is None:
        return None
    return parse_qs(urlsplit(url).query).get(name, [None])[0]


class ReplayJobSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = ReplayJob
        fields = [
            "id",
            "url",
            "endpoint_id",
            "since",
            "status",
            "total",
            "replayed",
            "created_at",
            "finished_at",
            "failure_reason",
        ]

    def get_url(self, job: ReplayJob) -> str:
        return f"/api/v1/replay-jobs/{job.id}/"


@extend_schema_view(list=extend_schema(parameters=[DeliveryFilterSerializer]))
class DeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Deliveries of the calling key's tenant, newest first."""

    pagination_class = DeliveryCursorPagination

    def get_serializer_class(self) -> type[serializers.Serializer]:
        return DeliveryDetailSerializer if self.action == "retrieve" else DeliverySerializer

    def get_queryset(self) -> QuerySet[Delivery]:
        if getattr(self, "swagger_fake_view", False):  # OpenAPI generation has no API key
            return Delivery.objects.none()
        deliveries = Delivery.objects.filter(endpoint__tenant=api_key_of(self.request).tenant)
        deliveries = deliveries.select_related("event__event_type")
        if self.action == "retrieve":
            return deliveries.prefetch_related("attempts")
        if self.action == "list":
            return _filtered(deliveries, self.request)
        return deliveries

    @extend_schema(request=None, responses={202: DeliverySerializer})
    @action(detail=True, methods=["post"])
    def replay(self, request: Request, pk: str) -> Response:
        """Queue this finished delivery for one more attempt (same webhook-id)."""
        delivery = self.get_object()
        if not deliveries_replay(deliveries=Delivery.objects.filter(id=delivery.id)):
            raise Conflict("The delivery is still pending: it is already queued.")
        delivery.refresh_from_db()
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


def _filtered(deliveries: QuerySet[Delivery], request: Request) -> QuerySet[Delivery]:
    # A plain dict, not the QueryDict: DRF reads an empty value in a QueryDict as "left out",
    # while the schema (and so a client) takes `?status=` as a value, and a wrong one.
    params = DeliveryFilterSerializer(data=request.query_params.dict())
    params.is_valid(raise_exception=True)
    wanted = params.validated_data
    lookups = {
        "status": "status",
        # Through the endpoint's primary key, which Django guards against numbers past the 64-bit
        # range (no row has one), where a foreign key's column is not: SQLite cannot take one.
        "endpoint": "endpoint__id",
        "event_type": "event__event_type__name",
        "ordering_key": "ordering_key",
        "created_after": "created_at__gte",
        "created_before": "created_at__lt",
    }
    return deliveries.filter(**{lookups[name]: value for name, value in wanted.items()})


class ReplayJobViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Progress of a bulk replay started with `POST /api/v1/endpoints/{id}/recover/`."""

    serializer_class = ReplayJobSerializer

    def get_queryset(self) -> QuerySet[ReplayJob]:
        if getattr(self, "swagger_fake_view", False):  # OpenAPI generation has no API key
            return ReplayJob.objects.none()
        return ReplayJob.objects.filter(tenant=api_key_of(self.request).tenant)
