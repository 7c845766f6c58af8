"""REST API for event types and endpoints."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import Throttled
from rest_framework.request import Request
from rest_framework.response import Response

from config.api_errors import Conflict
from config.api_types import JsonObjectField, JsonTypes
from deliveries.api import AttemptSerializer, DeliveryCursorPagination, ReplayJobSerializer
from deliveries.endpoint_figures import WINDOWS, EndpointFigures, endpoint_figures
from deliveries.hourly_stats import STATUS_CLASSES
from deliveries.missing import MISSING_LIMIT, deliveries_create_missing
from deliveries.selectors import attempts_wait, challenge_pending_id
from deliveries.services import replay_job_start
from deliveries.validators import validate_replay_since
from subscriptions.authentication import api_key_of, organisation_key_of
from subscriptions.channels import CHANNEL_RULE, channels_api_field
from subscriptions.filters import MAX_FILTER_LENGTH, filter_problem
from subscriptions.headers import headers_with_kept_values, masked_headers
from subscriptions.models import Endpoint, EventType
from subscriptions.services import (
    endpoint_add,
    endpoint_disable,
    endpoint_enable,
    endpoint_rotate_secret,
)
from subscriptions.validators import (
    MAX_HEADER_VALUE,
    MAX_HEADERS,
    MAX_METADATA_BYTES,
    SIGNING_SECRET_PATTERN,
    validate_endpoint_headers,
    validate_endpoint_metadata,
    validate_signing_secret,
)
from subscriptions.verification import (
    EndpointVerifiedError,
    endpoint_url_changed,
    endpoint_verification_retry,
    verification_state,
)
from webhooks.errors import TooManyTestSendsError
from webhooks.services import UNVERIFIED_NO_TEST, event_send_test
from webhooks.transformations import MAX_EXPRESSION_LENGTH, transformation_problem

HTTP_URL = RegexValidator(r"^https?://", "URL must start with https://.")


class IsStaffKeyOrReadOnly(permissions.BasePermission):
    message = "Changing the event-type catalog needs an organisation key or a staff API key."

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.method in permissions.SAFE_METHODS or organisation_key_of(request):
            return True
        return api_key_of(request).is_staff


class EventTypeSerializer(JsonTypes, serializers.ModelSerializer):
    class Meta:
        model = EventType
        fields = ["name", "description", "schema", "archived", "created_at"]
        read_only_fields = ["created_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        candidate = EventType(**{**self._current(), **attrs})
        candidate.clean()
        return attrs

    def _current(self) -> dict[str, Any]:
        if self.instance is None:
            return {}
        return {"name": self.instance.name, "schema": self.instance.schema}


class EventTypeViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """The global event-type catalog. Reading is open to every key; changes need an organisation
    key or a staff API key."""

    serializer_class = EventTypeSerializer
    permission_classes = [permissions.IsAuthenticated, IsStaffKeyOrReadOnly]
    lookup_field = "name"
    lookup_value_regex = r"[^/]+"
    queryset = EventType.objects.order_by("name")


class EventTypeNameField(serializers.SlugRelatedField):
    default_error_messages = {
        "does_not_exist": "Unknown or archived event type {value!r}.",
        "invalid": "Event types are given by name.",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            slug_field="name", queryset=EventType.objects.filter(archived=False), **kwargs
        )

    def to_internal_value(self, data: Any) -> EventType:
        if isinstance(data, str) and "\x00" in data:
            # No name holds NUL, and PostgreSQL refuses it even in a lookup.
            self.fail("does_not_exist", slug_name=self.slug_field, value=data)
        return super().to_internal_value(data)


@extend_schema_field(
    {
        "type": "object",
        "maxProperties": MAX_HEADERS,
        "additionalProperties": {"type": "string", "maxLength": MAX_HEADER_VALUE},
        "description": "Header names to values.",
    }
)
class EndpointHeadersField(serializers.JSONField):
    """Custom headers, values masked on the way out; a masked value sent back keeps the stored
    one (subscriptions.headers). Sending `headers` replaces the whole set."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("validators", [validate_endpoint_headers])
        kwargs.setdefault(
            "help_text",
            "Extra headers sent each time. Values come back masked (••••abcd); send a masked "
            "value back unchanged to keep it. Sending headers replaces the whole set.",
        )
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> Any:
        return masked_headers(value) if isinstance(value, dict) else {}

    def to_internal_value(self, data: Any) -> Any:
        data = super().to_internal_value(data)
        endpoint = getattr(self.parent, "instance", None)
        stored = endpoint.headers if isinstance(endpoint, Endpoint) else {}
        try:
            return headers_with_kept_values(given=data, stored=stored)
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.messages) from None


VERIFICATION_STATES = ["verified", "unverified"]


class EndpointSerializer(JsonTypes, serializers.ModelSerializer):
    event_types = EventTypeNameField(many=True, required=False)
    verification = serializers.SerializerMethodField(
        help_text="unverified while the endpoint has not echoed its ownership challenge: it "
        "receives nothing else, and its events wait (POST …/verify/ sends a new challenge)."
    )
    headers = EndpointHeadersField(required=False)
    payload_format = serializers.ChoiceField(
        choices=Endpoint.PayloadFormat.choices,
        required=False,
        help_text="How bodies are encoded: json (the default), xml or form.",
        error_messages={
            "invalid_choice": '"{input}" is not a payload format; use one of: '
            + ", ".join(Endpoint.PayloadFormat.values)
            + "."
        },
    )
    filter = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=MAX_FILTER_LENGTH,
        help_text="A CEL expression over type, data, tenant and timestamp, such as "
        'data.amount > 10000 && data.currency == "EUR": only events for which it is true are '
        "delivered. Empty (the default) for every event of the chosen types. A bad expression "
        "is a 400 naming its line and column.",
    )

    transformation = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=MAX_EXPRESSION_LENGTH,
        help_text="A JSONata expression that reshapes the body before it is encoded, signed and "
        'sent, such as {"text": "Order " & data.order_id & " paid"}; empty for none.',
    )
    metadata = JsonObjectField(
        required=False,
        validators=[validate_endpoint_metadata],
        help_text="Your own data about the endpoint, such as your ids for it: a JSON object of "
        f"at most {MAX_METADATA_BYTES} bytes as compact JSON. Stored and returned, never sent.",
    )
    channels = channels_api_field(
        required=False,
        help_text="The channels it listens on. An event sent with channels reaches only the "
        "endpoints that share one of them; an event without channels reaches it whatever it "
        f"lists. {CHANNEL_RULE}",
    )

    class Meta:
        model = Endpoint
        fields = [
            "id",
            "url",
            "description",
            "event_types",
            "is_active",
            "disabled_reason",
            "disabled_at",
            "headers",
            "rate_limit",
            "payload_format",
            "filter",
            "transformation",
            "metadata",
            "channels",
            "verification",
            "verified_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id", "disabled_reason", "disabled_at", "verified_at", "created_at", "updated_at",
        ]  # fmt: skip
        extra_kwargs = {
            "verified_at": {
                "help_text": "When the endpoint echoed its ownership challenge, or was saved "
                "while verification did not apply; null while it is unverified."
            }
        }

    @extend_schema_field(serializers.ChoiceField(choices=VERIFICATION_STATES))
    def get_verification(self, endpoint: Endpoint) -> str:
        return verification_state(endpoint)

    def validate_transformation(self, value: str) -> str:
        problem = transformation_problem(value)
        if problem is not None:
            raise serializers.ValidationError(problem)
        return value

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        # Also states the schemes in the OpenAPI schema; the model's validator does the rest.
        fields["url"].validators.append(HTTP_URL)
        return fields

    def validate_filter(self, value: str) -> str:
        problem = filter_problem(value)
        if problem is not None:
            raise serializers.ValidationError(problem)
        return value


class EndpointCreateSerializer(EndpointSerializer):
    """Creating an endpoint returns its signing secret, once."""

    secret = serializers.CharField(
        required=False,
        validators=[validate_signing_secret, RegexValidator(SIGNING_SECRET_PATTERN)],
        help_text="whsec_…; generated if omitted.",
    )

    class Meta(EndpointSerializer.Meta):
        fields = [*EndpointSerializer.Meta.fields, "secret"]

    def create(self, validated_data: dict[str, Any]) -> Endpoint:
        # Through the service, which holds the tenant to its limit of endpoints.
        event_types = validated_data.pop("event_types", [])
        return endpoint_add(endpoint=Endpoint(**validated_data), event_types=event_types)


class RotateSecretSerializer(JsonTypes, serializers.Serializer):
    overlap_seconds = serializers.IntegerField(
        required=False, min_value=0, max_value=7 * 24 * 3600,
        help_text="How long the old secret keeps signing (default 24 h; 0 for a leaked secret).",
    )  # fmt: skip


class RotatedSecretSerializer(serializers.Serializer):
    secret = serializers.CharField()
    previous_secret_expires_at = serializers.DateTimeField(
        help_text="When the secret just replaced stops signing. Secrets replaced earlier keep "
        "signing until their own expiry."
    )


class TestEventSerializer(JsonTypes, serializers.Serializer):
    event_type = serializers.CharField(required=False, max_length=200)
    payload = serializers.DictField(required=False)


class TestResultSerializer(serializers.Serializer):
    delivery_id = serializers.IntegerField()
    url = serializers.CharField(help_text="The test delivery, with its attempt once made.")
    attempt = AttemptSerializer(allow_null=True, help_text="Null until a worker attempted it.")


class VerificationSerializer(serializers.Serializer):
    verification = serializers.ChoiceField(choices=VERIFICATION_STATES)
    delivery_id = serializers.IntegerField(
        allow_null=True, help_text="The challenge's delivery; null when none was sent."
    )
    url = serializers.CharField(allow_null=True, help_text="The challenge's delivery, to follow.")


class RecoverSerializer(JsonTypes, serializers.Serializer):
    since = serializers.DateTimeField(
        validators=[validate_replay_since],
        help_text="Replay the failed deliveries created at or after this time (not in the future).",
    )


class StatsQuerySerializer(JsonTypes, serializers.Serializer):
    window = serializers.ChoiceField(
        choices=list(WINDOWS), default="24h",
        help_text="The current hour and those before it: 1h, 24h (the default), 7d or 30d.",
    )  # fmt: skip


class LatencySerializer(serializers.Serializer):
    p50 = serializers.FloatField(allow_null=True, help_text="Milliseconds, within 4.5 %.")
    p95 = serializers.FloatField(allow_null=True, help_text="Milliseconds, within 4.5 %.")


class StatusClassesSerializer(serializers.Serializer):
    status_1xx = serializers.IntegerField()
    status_2xx = serializers.IntegerField()
    status_3xx = serializers.IntegerField()
    status_4xx = serializers.IntegerField()
    status_5xx = serializers.IntegerField()
    no_response = serializers.IntegerField(
        help_text="Timeouts, refused and reset connections, TLS."
    )


class BacklogSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    due = serializers.IntegerField(help_text="May go now (or going).")
    scheduled = serializers.IntegerField(help_text="Retries waiting out their backoff.")
    held = serializers.IntegerField(help_text="Behind the endpoint's open circuit.")
    parked = serializers.IntegerField(help_text="The endpoint is disabled.")
    waiting = serializers.IntegerField(
        help_text="Behind an earlier delivery of their ordering key."
    )
    unverified = serializers.IntegerField(help_text="Until the endpoint echoes its challenge.")
    retrying = serializers.IntegerField(help_text="Failed at least once, with another attempt due.")


class EndpointStatsSerializer(serializers.Serializer):
    window = serializers.CharField()
    since = serializers.DateTimeField(help_text="The window's first hour.")
    until = serializers.DateTimeField()
    attempts = serializers.IntegerField()
    succeeded = serializers.IntegerField(help_text="Attempts answered 2xx.")
    failed = serializers.IntegerField()
    success_rate = serializers.FloatField(
        allow_null=True, help_text="Percent; null without attempts."
    )
    delivered = serializers.IntegerField(help_text="Deliveries delivered in the window.")
    dead = serializers.IntegerField(help_text="Deliveries given up on in the window.")
    latency_ms = LatencySerializer()
    attempts_by_status_class = StatusClassesSerializer()
    backlog = BacklogSerializer(help_text="The endpoint's pending deliveries now.")


def _stats_body(window: str, figures: EndpointFigures) -> dict[str, Any]:
    tally, backlog = figures.tally, figures.backlog
    return {
        "window": window, "since": figures.since, "until": figures.until,
        "attempts": tally.attempts, "succeeded": tally.succeeded, "failed": tally.failed,
        "success_rate": tally.success_rate,
        "delivered": tally.succeeded, "dead": tally.dead,
        "latency_ms": {"p50": tally.percentile_ms(50), "p95": tally.percentile_ms(95)},
        "attempts_by_status_class": {name: getattr(tally, name) for name in STATUS_CLASSES}
        | {"no_response": tally.no_response},
        "backlog": {**asdict(backlog), "total": backlog.total, "retrying": figures.retrying},
    }  # fmt: skip


class ReplayMissingSerializer(JsonTypes, serializers.Serializer):
    since = serializers.DateTimeField(
        validators=[validate_replay_since],
        help_text="Send the events created at or after this time (not in the future) that the "
        "endpoint wants but never got a delivery of.",
    )


class ReplayMissingResultSerializer(serializers.Serializer):
    queued = serializers.IntegerField(help_text="Deliveries created, for the workers to send.")
    more = serializers.BooleanField(
        help_text=f"True when more than {MISSING_LIMIT:,} events were left to look at: call "
        "again with `since` set to `next_since`."
    )
    next_since = serializers.DateTimeField(allow_null=True)


class EndpointCursorPagination(DeliveryCursorPagination):
    # Oldest first, as the list always was; a tenant's endpoints are few (a setting caps them).
    ordering = "id"


class EndpointViewSet(viewsets.ModelViewSet):
    """The calling key's tenant's endpoints, oldest first, a page at a time (follow `next`).
    Other tenants' ids answer 404."""

    http_method_names = ["get", "post", "put", "patch", "delete"]
    pagination_class = EndpointCursorPagination

    def get_queryset(self) -> QuerySet[Endpoint]:
        if getattr(self, "swagger_fake_view", False):  # OpenAPI generation has no API key
            return Endpoint.objects.none()
        return Endpoint.objects.filter(tenant=api_key_of(self.request).tenant).prefetch_related(
            "event_types"
        )

    def get_serializer_class(self) -> type[serializers.Serializer]:
        return EndpointCreateSerializer if self.action == "create" else EndpointSerializer

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        serializer.save(tenant=api_key_of(self.request).tenant)

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        was_active = cast(Endpoint, serializer.instance).is_active
        previous_url = cast(Endpoint, serializer.instance).url
        wants_active = serializer.validated_data.pop("is_active", was_active)
        with transaction.atomic():
            endpoint = serializer.save()
            # A new URL must prove its ownership afresh when verification applies.
            endpoint_url_changed(endpoint=endpoint, previous_url=previous_url)
        if wants_active and not was_active:
            endpoint_enable(endpoint=endpoint)
        elif was_active and not wants_active:
            endpoint_disable(endpoint_ids=[endpoint.id], reason="Disabled through the API.")
            endpoint.refresh_from_db()

    @extend_schema(request=RotateSecretSerializer, responses=RotatedSecretSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str) -> Response:
        endpoint = self.get_object()
        params = RotateSecretSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        rotation = endpoint_rotate_secret(
            endpoint=endpoint, overlap_seconds=params.validated_data.get("overlap_seconds")
        )
        return Response(RotatedSecretSerializer(rotation).data)

    @extend_schema(
        request=TestEventSerializer,
        responses={200: TestResultSerializer, 202: TestResultSerializer},
    )
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str) -> Response:
        """Send a test event to this endpoint through the workers and return its attempt.

        200 with the attempt when a worker made it within WEBHOOKS_TEST_WAIT_SECONDS; otherwise
        202 with the delivery to follow at `url`. 429 while the tenant has
        WEBHOOKS_TEST_SENDS_PER_TENANT test events waiting to be sent.
        """
        endpoint = self.get_object()
        if not endpoint.is_active:
            raise Conflict("The endpoint is disabled; enable it before sending a test event.")
        if endpoint.verified_at is None:
            raise Conflict(UNVERIFIED_NO_TEST)
        params = TestEventSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        try:
            delivery = event_send_test(endpoint=endpoint, **params.validated_data)
        except TooManyTestSendsError as error:
            raise Throttled(wait=error.retry_after, detail=str(error)) from None
        attempts = attempts_wait(
            delivery_ids=[delivery.id], seconds=settings.WEBHOOKS_TEST_WAIT_SECONDS
        )
        attempt = attempts.get(delivery.id)
        body = {
            "delivery_id": delivery.id,
            "url": f"/api/v1/deliveries/{delivery.id}/",
            "attempt": AttemptSerializer(attempt).data if attempt else None,
        }
        return Response(body, status=status.HTTP_200_OK if attempt else status.HTTP_202_ACCEPTED)

    @extend_schema(request=RecoverSerializer, responses={202: ReplayJobSerializer})
    @action(detail=True, methods=["post"])
    def recover(self, request: Request, pk: str) -> Response:
        """Replay, in the background, the failed deliveries of this endpoint since `since`."""
        endpoint = self.get_object()
        params = RecoverSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        job = replay_job_start(
            endpoint=endpoint,
            since=params.validated_data["since"],
            requested_by=f"API key {api_key_of(request).prefix}…",
        )
        return Response(ReplayJobSerializer(job, context={"request": request}).data, status=202)

    @extend_schema(parameters=[StatsQuerySerializer], responses=EndpointStatsSerializer)
    @action(detail=True, methods=["get"])
    def stats(self, request: Request, pk: str) -> Response:
        """Attempts, success rate, latency and deliveries over a window of whole hours, and the
        backlog now: the figures the dashboard's endpoint page draws."""
        endpoint = self.get_object()
        # A plain dict: an empty `window=` is refused, not read as the default.
        params = StatsQuerySerializer(data=request.query_params.dict())
        params.is_valid(raise_exception=True)
        window = params.validated_data["window"]
        figures = endpoint_figures(endpoint.id, hours=WINDOWS[window], now=timezone.now())
        return Response(EndpointStatsSerializer(_stats_body(window, figures)).data)

    @extend_schema(request=ReplayMissingSerializer, responses={202: ReplayMissingResultSerializer})
    @action(detail=True, methods=["post"], url_path="replay-missing")
    def replay_missing(self, request: Request, pk: str) -> Response:
        """Send the endpoint every event since `since` that it wants (by its event types and
        filter as they are now) but never got a delivery of: one that was disabled, or added
        later. Failed deliveries are `recover`'s."""
        endpoint = self.get_object()
        params = ReplayMissingSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        missing = deliveries_create_missing(endpoint=endpoint, since=params.validated_data["since"])
        return Response(ReplayMissingResultSerializer(missing).data, status=202)

    @extend_schema(
        request=None, responses={202: VerificationSerializer, 200: VerificationSerializer}
    )
    @action(detail=True, methods=["post"])
    def verify(self, request: Request, pk: str) -> Response:
        """Send an unverified endpoint a new ownership challenge (the one it has not echoed is
        dropped): 202 with the challenge's delivery to follow at `url`. With verification off
        for the tenant, the endpoint is trusted at once: 200, its held events go. 409 when it is
        verified already.
        """
        endpoint = self.get_object()
        try:
            challenged = endpoint_verification_retry(endpoint=endpoint)
        except EndpointVerifiedError:
            raise Conflict(
                "This endpoint is verified already: there is no challenge to retry."
            ) from None
        delivery_id = challenge_pending_id(endpoint_id=endpoint.id) if challenged else None
        body = {
            "verification": verification_state(endpoint),
            "delivery_id": delivery_id,
            "url": f"/api/v1/deliveries/{delivery_id}/" if delivery_id else None,
        }
        return Response(body, status=status.HTTP_202_ACCEPTED if challenged else status.HTTP_200_OK)
