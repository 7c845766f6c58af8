"""REST API for the host's organisation key: tenants, and each tenant's API keys.

/api/v1/tenants/ creates, lists, reads, updates and deactivates tenants (DELETE deactivates:
nothing is deleted); /api/v1/tenants/{slug}/api-keys/ issues, lists and revokes a tenant's keys.
Tenants are named by slug. Staff API keys, which predate organisation keys, keep what they had:
reading tenants and setting `delivery_weight` and `verify_endpoints`
(docs/decisions/0028-organisation-keys-and-tenant-limits.md). Every other key gets 403.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from config.api_errors import Conflict
from config.api_types import JsonTypes
from deliveries.api import DeliveryCursorPagination
from subscriptions.authentication import api_key_of, organisation_key_of
from subscriptions.models import ApiKey, Tenant
from subscriptions.services import (
    api_key_create,
    api_key_revoke,
    tenant_create,
    tenant_deactivate,
    tenant_update,
)

MANAGING_TENANTS = (
    "Managing tenants needs an organisation key; a staff API key may only read tenants and set "
    "their delivery_weight and verify_endpoints."
)
TENANT_SLUG = OpenApiParameter(
    "tenant_slug", str, OpenApiParameter.PATH, description="The tenant's slug."
)
# What staff API keys could do before organisation keys existed, and still may.
STAFF_KEY_ACTIONS = frozenset({"list", "retrieve", "update", "partial_update"})
STAFF_KEY_SETTINGS = frozenset({"delivery_weight", "verify_endpoints"})


class IsOrganisationKey(permissions.BasePermission):
    message = MANAGING_TENANTS

    def has_permission(self, request: Request, view: Any) -> bool:
        return organisation_key_of(request) is not None


class IsOrganisationKeyOrStaffKey(permissions.BasePermission):
    message = MANAGING_TENANTS

    def has_permission(self, request: Request, view: Any) -> bool:
        if organisation_key_of(request) is not None:
            return True
        return getattr(view, "action", None) in STAFF_KEY_ACTIONS and api_key_of(request).is_staff


class TenantCursorPagination(DeliveryCursorPagination):
    ordering = "id"


TENANT_FIELDS = [
    "slug",
    "name",
    "is_active",
    "delivery_weight",
    "verify_endpoints",
    "max_events_per_second",
    "retention_days",
    "created_at",
]


class TenantSerializer(JsonTypes, serializers.ModelSerializer):
    """A tenant as an organisation key reads and changes it; the slug is fixed once created."""

    class Meta:
        model = Tenant
        fields = TENANT_FIELDS
        read_only_fields = ["slug", "created_at"]
        extra_kwargs = {"name": {"allow_blank": False}}

    def update(self, instance: Tenant, validated_data: dict[str, Any]) -> Tenant:
        return tenant_update(tenant=instance, changes=validated_data)


class TenantCreateSerializer(TenantSerializer):
    class Meta(TenantSerializer.Meta):
        read_only_fields = ["created_at"]
        extra_kwargs: dict[str, dict[str, Any]] = {
            "name": {"required": False, "help_text": "Display name; the slug when omitted."},
            "slug": {"help_text": "Short unique name used in URLs, such as acme."},
        }

    def create(self, validated_data: dict[str, Any]) -> Tenant:
        return tenant_create(**validated_data)


class StaffTenantSerializer(TenantSerializer):
    """A tenant as a staff API key sees it: the same fields, of which only the weight and
    verification can change (others sent are ignored, as they always were)."""

    class Meta(TenantSerializer.Meta):
        read_only_fields = [f for f in TENANT_FIELDS if f not in STAFF_KEY_SETTINGS]


@extend_schema_view(
    destroy=extend_schema(
        description="Deactivate the tenant, deleting nothing: its API keys are refused, its "
        "portal links stop opening and their sessions end, and its events are refused. PATCH "
        "`is_active` to true to undo it."
    )
)
class TenantViewSet(viewsets.ModelViewSet):
    """Every tenant, oldest first, for the host's organisation key: create them, read them, set
    their name, `delivery_weight` (share of delivery capacity under contention, 1 to 100),
    `verify_endpoints` (null follows WEBHOOKS_VERIFY_ENDPOINTS), `max_events_per_second` (the
    emit quota; null: none) and `retention_days` (null: WEBHOOKS_RETENTION_DAYS; 0: kept for
    good), and deactivate them. Staff API keys may read tenants and set the weight and
    verification only."""

    http_method_names = ["get", "post", "put", "patch", "delete"]
    permission_classes = [permissions.IsAuthenticated, IsOrganisationKeyOrStaffKey]
    pagination_class = TenantCursorPagination
    lookup_field = "slug"
    queryset = Tenant.objects.all()

    def get_serializer_class(self) -> type[serializers.Serializer]:
        if self.action == "create":
            return TenantCreateSerializer
        if getattr(self, "swagger_fake_view", False) or organisation_key_of(self.request):
            return TenantSerializer
        return StaffTenantSerializer

    def perform_destroy(self, instance: Tenant) -> None:
        tenant_deactivate(tenant=instance)


class TenantApiKeySerializer(JsonTypes, serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "is_staff", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = ["id", "prefix", "is_staff", "created_at", "last_used_at", "revoked_at"]
        extra_kwargs = {
            "name": {"required": False, "help_text": "What the key is for, to recognise it."},
            "prefix": {"help_text": "The start of the key, to recognise it."},
        }


class TenantApiKeyCreatedSerializer(TenantApiKeySerializer):
    """A new key: the only time the key itself is shown. Hookline keeps only its hash."""

    key = serializers.CharField(read_only=True, help_text="The key, shown only now: hl_…")

    class Meta(TenantApiKeySerializer.Meta):
        fields = [*TenantApiKeySerializer.Meta.fields, "key"]


class ApiKeyCursorPagination(DeliveryCursorPagination):
    ordering = "id"


def tenant_in_path(view: viewsets.GenericViewSet) -> Tenant:
    """The tenant the URL names by slug (404 when there is none)."""
    return get_object_or_404(Tenant, slug=view.kwargs["tenant_slug"])


def active_tenant_in_path(view: viewsets.GenericViewSet) -> Tenant:
    """The tenant the URL names; 409 when it is deactivated (what it would get could not work)."""
    tenant = tenant_in_path(view)
    if not tenant.is_active:
        raise Conflict(
            f"Tenant {tenant.slug!r} is deactivated; set is_active to true before giving it "
            "keys or links."
        )
    return tenant


@extend_schema(parameters=[TENANT_SLUG])
@extend_schema_view(
    destroy=extend_schema(description="Revoke the key: it is refused from now on."),
    create=extend_schema(
        request=TenantApiKeySerializer, responses={201: TenantApiKeyCreatedSerializer}
    ),
)
class TenantApiKeyViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """A tenant's API keys, oldest first, revoked ones included, for the organisation key.
    A new key is shown once, in the response that creates it."""

    permission_classes = [permissions.IsAuthenticated, IsOrganisationKey]
    pagination_class = ApiKeyCursorPagination
    serializer_class = TenantApiKeySerializer

    def get_queryset(self) -> QuerySet[ApiKey]:
        if getattr(self, "swagger_fake_view", False):  # OpenAPI generation names no tenant
            return ApiKey.objects.none()
        return ApiKey.objects.filter(tenant=tenant_in_path(self))

    def create(self, request: Request, tenant_slug: str) -> Response:
        """Issue an API key for the tenant; the key is in this response only."""
        params = TenantApiKeySerializer(data=request.data)
        params.is_valid(raise_exception=True)
        api_key, key = api_key_create(
            tenant=active_tenant_in_path(self), name=params.validated_data.get("name", "")
        )
        body = {**TenantApiKeySerializer(api_key).data, "key": key}
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: ApiKey) -> None:
        api_key_revoke(api_key=instance)
