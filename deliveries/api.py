"""REST API for deliveries (list, detail with attempts, replay) and replay jobs."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db.models import QuerySet
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from config.api_errors import Conflict
from deliveries.dashboard.portal import CAPABILITIES, MAX_LIFETIME, portal_token
from deliveries.models import Attempt, Delivery, ReplayJob
from deliveries.services import deliveries_replay


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
        ]


class DeliveryDetailSerializer(DeliverySerializer):
    payload = serializers.JSONField(source="event.payload_as_sent", read_only=True)
    attempts = AttemptSerializer(many=True)

    class Meta(DeliverySerializer.Meta):
        fields = [*DeliverySerializer.Meta.fields, "payload", "attempts"]


class DeliveryFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Delivery.Status.choices, required=False)
    endpoint = serializers.IntegerField(required=False, min_value=1)
    event_type = serializers.CharField(required=False, max_length=200)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)


class DeliveryCursorPagination(CursorPagination):
    # Keyset pagination on the primary key: no COUNT(*), constant cost at any depth.
    ordering = "-id"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200

    def decode_cursor(self, request: Request) -> Cursor | None:
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            try:
                int(cursor.position)
            except (TypeError, ValueError):
                raise NotFound(self.invalid_cursor_message) from None
        return cursor


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
        ]

    def get_url(self, job: ReplayJob) -> str:
        return f"/api/v1/replay-jobs/{job.id}/"


FILTER_PARAMETERS = [
    OpenApiParameter("status", str, enum=Delivery.Status.values),
    OpenApiParameter("endpoint", int),
    OpenApiParameter("event_type", str),
    OpenApiParameter("created_after", OpenApiTypes.DATETIME),
    OpenApiParameter("created_before", OpenApiTypes.DATETIME),
]


@extend_schema_view(list=extend_schema(parameters=FILTER_PARAMETERS))
class DeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Deliveries of the calling key's tenant, newest first."""

    pagination_class = DeliveryCursorPagination

    def get_serializer_class(self) -> type[serializers.Serializer]:
        return DeliveryDetailSerializer if self.action == "retrieve" else DeliverySerializer

    def get_queryset(self) -> QuerySet[Delivery]:
        if getattr(self, "swagger_fake_view", False):  # OpenAPI generation has no API key
            return Delivery.objects.none()
        deliveries = Delivery.objects.filter(endpoint__tenant=self.request.auth.tenant)
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
    params = DeliveryFilterSerializer(data=request.query_params)
    params.is_valid(raise_exception=True)
    wanted = params.validated_data
    lookups = {
        "status": "status",
        "endpoint": "endpoint_id",
        "event_type": "event__event_type__name",
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
        return ReplayJob.objects.filter(tenant=self.request.auth.tenant)


class PortalLinkRequestSerializer(serializers.Serializer):
    capabilities = serializers.ListField(
        child=serializers.ChoiceField(choices=CAPABILITIES),
        required=False,
        default=["view"],
        help_text="view (always), replay, manage_endpoints.",
    )
    expires_in = serializers.IntegerField(
        required=False, default=3600, min_value=60, max_value=MAX_LIFETIME,
        help_text="Seconds the link (and the session it opens) stays valid.",
    )  # fmt: skip


class PortalLinkSerializer(serializers.Serializer):
    url = serializers.URLField()
    expires_at = serializers.DateTimeField()
    capabilities = serializers.ListField(child=serializers.CharField())


class PortalLinkView(generics.GenericAPIView):
    """A short-lived signed link opening the dashboard for the key's tenant, no account needed."""

    serializer_class = PortalLinkRequestSerializer

    @extend_schema(request=PortalLinkRequestSerializer, responses={201: PortalLinkSerializer})
    def post(self, request: Request) -> Response:
        params = PortalLinkRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        capabilities = sorted(set(params.validated_data["capabilities"]) | {"view"})
        token, expires_at = portal_token(
            tenant_id=request.auth.tenant_id,
            capabilities=capabilities,
            lifetime=params.validated_data["expires_in"],
        )
        url = request.build_absolute_uri(reverse("dashboard:portal", args=[token]))
        body = {
            "url": url,
            "expires_at": datetime.fromtimestamp(expires_at, tz=UTC),
            "capabilities": capabilities,
        }
        return Response(PortalLinkSerializer(body).data, status=status.HTTP_201_CREATED)
