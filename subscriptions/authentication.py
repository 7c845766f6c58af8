"""API keys: `Authorization: Bearer <key>`, each key acting for its own tenant only.

An organisation key (`hlo_…`) authenticates the same way, and acts for the host across tenants:
on /api/v1/tenants/ and the event-type catalog. Every tenant path reads its tenant through
`api_key_of`, which answers an organisation key 403: it belongs to no tenant.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from subscriptions.models import ApiKey, OrganisationKey
from subscriptions.services import ORGANISATION_KEY_PREFIX, hash_api_key
from subscriptions.throttling import api_key_failure_record

# Writing last_used_at on every request would turn each read into a write; once a minute will do.
LAST_USED_PRECISION = timedelta(minutes=1)

ORGANISATION_KEY_ON_TENANT_PATH = (
    "An organisation key belongs to no tenant: it manages tenants under /api/v1/tenants/. "
    "Use one of the tenant's API keys here (POST /api/v1/tenants/{slug}/api-keys/ makes one)."
)

Principal = ApiKey | OrganisationKey


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Principal, Principal] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            api_key_failure_record(request=request, key="")
            raise exceptions.AuthenticationFailed(
                "Send the API key as 'Authorization: Bearer <key>'."
            )
        principal = _principal(key.strip())
        if principal is None:
            # Recorded only now: a valid key is never held back by its address's failures.
            api_key_failure_record(request=request, key=key.strip())
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        _touch(principal)
        return principal, principal

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="hookline"'


def _principal(key: str) -> Principal | None:
    """The live key `key` is: an organisation key, or an API key of an active tenant."""
    hashed = hash_api_key(key)
    if key.startswith(ORGANISATION_KEY_PREFIX):
        return OrganisationKey.objects.filter(key_hash=hashed, revoked_at__isnull=True).first()
    api_key = (
        ApiKey.objects.select_related("tenant")
        .filter(key_hash=hashed, revoked_at__isnull=True)
        .first()
    )
    if api_key is None or not api_key.tenant.is_active:
        return None
    return api_key


def api_key_of(request: Request) -> ApiKey:
    """The tenant's API key that authenticated `request`; every tenant path requires one.
    Raises PermissionDenied (403) for an organisation key, which belongs to no tenant."""
    api_key = request.auth
    if isinstance(api_key, OrganisationKey):
        raise exceptions.PermissionDenied(ORGANISATION_KEY_ON_TENANT_PATH)
    if not isinstance(api_key, ApiKey):
        raise exceptions.NotAuthenticated()
    return api_key


def organisation_key_of(request: Request) -> OrganisationKey | None:
    """The organisation key that authenticated `request`; None for a tenant's API key."""
    return request.auth if isinstance(request.auth, OrganisationKey) else None


def _touch(principal: Principal) -> None:
    now = timezone.now()
    if principal.last_used_at is None or now - principal.last_used_at > LAST_USED_PRECISION:
        type(principal).objects.filter(id=principal.id).update(last_used_at=now)


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Describes API keys in the OpenAPI schema."""

    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A tenant's API key (hl_…), or on /api/v1/tenants/ and the "
            "event-type catalog, an organisation key (hlo_…).",
        }
