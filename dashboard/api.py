"""REST API for portal links: issue, list, read and revoke the links that open the dashboard.

A tenant's API key handles its own (/api/v1/portal-links/); the organisation key any tenant's
(/api/v1/tenants/{slug}/portal-links/), through the same service.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from config.api_types import JsonTypes
from dashboard.models import PortalLink
from dashboard.portal import CAPABILITIES, MAX_LIFETIME, portal_link_issue, portal_links_revoke
from dashboard.portal_theme import (
    ACCENT_PATTERN,
    ACCENT_RULE,
    HOST_NAME_PATTERN,
    LOGO_URL_PATTERN,
    LOGO_URL_RULE,
    MAX_HOST_NAME,
    MAX_LOGO_URL,
    PortalTheme,
    validate_host_name,
    validate_logo_url,
)
from deliveries.api import DeliveryCursorPagination
from subscriptions.authentication import api_key_of, organisation_key_of
from subscriptions.models import ApiKey, OrganisationKey, Tenant
from subscriptions.tenants_api import (
    TENANT_SLUG,
    IsOrganisationKey,
    active_tenant_in_path,
    tenant_in_path,
)


class PortalThemeSerializer(JsonTypes, serializers.Serializer):
    """What a portal link shows of the host: its name, its logo and its accent colour."""

    host_name = serializers.RegexField(
        HOST_NAME_PATTERN, required=False, allow_blank=True, max_length=MAX_HOST_NAME,
        trim_whitespace=False, validators=[validate_host_name],
        error_messages={"invalid": "The host name must be one line of text, without control "
                        "characters."},
        help_text="Shown in the portal's top bar instead of Hookline's name.",
    )  # fmt: skip
    logo_url = serializers.RegexField(
        LOGO_URL_PATTERN, required=False, allow_blank=True, max_length=MAX_LOGO_URL,
        trim_whitespace=False, validators=[validate_logo_url],
        error_messages={"invalid": LOGO_URL_RULE},
        help_text="An https:// image URL, shown in the top bar by the tenant's browser; Hookline "
        "never fetches it.",
    )  # fmt: skip
    accent = serializers.RegexField(
        ACCENT_PATTERN, required=False, allow_blank=True, trim_whitespace=False,
        error_messages={"invalid": ACCENT_RULE},
        help_text="The accent colour of links and buttons, #rrggbb.",
    )  # fmt: skip


class PortalLinkRequestSerializer(JsonTypes, serializers.Serializer):
    capabilities = serializers.ListField(
        child=serializers.ChoiceField(choices=CAPABILITIES),
        required=False,
        default=["view"],
        help_text="view (always), replay, manage_endpoints, view_secret (reveal signing secrets).",
    )
    expires_in = serializers.IntegerField(
        required=False, default=3600, min_value=60, max_value=MAX_LIFETIME,
        help_text="Seconds the link (and the session it opens) stays valid.",
    )  # fmt: skip
    theme = PortalThemeSerializer(
        required=False, help_text="The host's look for the portal's pages; omit for Hookline's."
    )

    def validate_theme(self, value: dict[str, str]) -> PortalTheme:
        return PortalTheme(**value)


class PortalLinkSerializer(serializers.Serializer):
    """A new link: the only time its URL (and the token in it) is shown."""

    id = serializers.IntegerField()
    url = serializers.URLField()
    expires_at = serializers.DateTimeField()
    capabilities = serializers.ListField(child=serializers.CharField())
    theme = PortalThemeSerializer()


class PortalLinkStateSerializer(serializers.ModelSerializer):
    """An issued link as stored: when it was issued, opened and from where, and by which key."""

    capabilities = serializers.ListField(child=serializers.CharField(), read_only=True)
    state = serializers.ChoiceField(choices=PortalLink.State.choices, read_only=True)
    issued_by = serializers.SerializerMethodField(
        help_text="Prefix of the API key (hl_…) or organisation key (hlo_…) that issued the link; "
        "null for links issued from code or by a key deleted since."
    )
    theme = PortalThemeSerializer(read_only=True)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_issued_by(self, link: PortalLink) -> str | None:
        issuer = link.issued_by or link.issued_by_org_key
        return issuer.prefix if issuer is not None else None

    class Meta:
        model = PortalLink
        fields = [
            "id",
            "state",
            "capabilities",
            "created_at",
            "expires_at",
            "opened_at",
            "opened_from",
            "revoked_at",
            "issued_by",
            "theme",
        ]


class PortalLinkCursorPagination(DeliveryCursorPagination):
    """Newest first, keyset pages: a tenant gets a link per dashboard visit, so they add up."""


@extend_schema_view(
    destroy=extend_schema(description="Revoke the link; the session it opened ends too.")
)
class PortalLinkViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Single-use links opening the dashboard for the key's tenant, no account needed.

    Other tenants' ids answer 404. DELETE revokes a link and ends the session it opened.
    """

    serializer_class = PortalLinkStateSerializer
    pagination_class = PortalLinkCursorPagination

    def get_queryset(self) -> QuerySet[PortalLink]:
        if getattr(self, "swagger_fake_view", False):  # OpenAPI generation has no API key
            return PortalLink.objects.none()
        return PortalLink.objects.filter(tenant=api_key_of(self.request).tenant).select_related(
            "issued_by", "issued_by_org_key"
        )

    @extend_schema(request=PortalLinkRequestSerializer, responses={201: PortalLinkSerializer})
    def create(self, request: Request) -> Response:
        """Issue a link. Its URL is shown only now; it opens the dashboard once."""
        api_key = api_key_of(request)
        return portal_link_response(request, tenant=api_key.tenant, issued_by=api_key)

    def perform_destroy(self, instance: PortalLink) -> None:
        portal_links_revoke(links=PortalLink.objects.filter(id=instance.id))


def portal_link_response(
    request: Request, *, tenant: Tenant, issued_by: ApiKey | OrganisationKey | None
) -> Response:
    """Issue a link for `tenant` as the request asks: 201 with its URL, shown only now."""
    params = PortalLinkRequestSerializer(data=request.data)
    params.is_valid(raise_exception=True)
    link, token = portal_link_issue(
        tenant=tenant,
        capabilities=params.validated_data["capabilities"],
        lifetime=params.validated_data["expires_in"],
        issued_by=issued_by,
        theme=params.validated_data.get("theme"),
    )
    body = {
        "id": link.id,
        "url": request.build_absolute_uri(reverse("dashboard:portal", args=[token])),
        "expires_at": link.expires_at,
        "capabilities": link.capabilities,
        "theme": link.theme,
    }
    return Response(PortalLinkSerializer(body).data, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[TENANT_SLUG])
@extend_schema_view(
    destroy=extend_schema(description="Revoke the link; the session it opened ends too.")
)
class TenantPortalLinkViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """A tenant's portal links, newest first, for the organisation key: the same links as
    /api/v1/portal-links/ issues, each with the prefix of the key that issued it."""

    serializer_class = PortalLinkStateSerializer
    pagination_class = PortalLinkCursorPagination
    permission_classes = [permissions.IsAuthenticated, IsOrganisationKey]

    def get_queryset(self) -> QuerySet[PortalLink]:
        if getattr(self, "swagger_fake_view", False):  # OpenAPI generation names no tenant
            return PortalLink.objects.none()
        return PortalLink.objects.filter(tenant=tenant_in_path(self)).select_related(
            "issued_by", "issued_by_org_key"
        )

    @extend_schema(request=PortalLinkRequestSerializer, responses={201: PortalLinkSerializer})
    def create(self, request: Request, tenant_slug: str) -> Response:
        """Issue a link opening the dashboard for this tenant. Its URL is shown only now; it
        opens once. 409 while the tenant is deactivated."""
        return portal_link_response(
            request, tenant=active_tenant_in_path(self), issued_by=organisation_key_of(request)
        )

    def perform_destroy(self, instance: PortalLink) -> None:
        portal_links_revoke(links=PortalLink.objects.filter(id=instance.id))
