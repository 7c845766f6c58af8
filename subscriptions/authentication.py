"""API keys: `Authorization: Bearer <key>`, each key acting for its own tenant only."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from subscriptions.models import ApiKey
from subscriptions.services import hash_api_key
from subscriptions.throttling import api_key_failure_record

# Writing last_used_at on every request would turn each read into a write; once a minute will do.
LAST_USED_PRECISION = timedelta(minutes=1)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiKey, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            api_key_failure_record(request=request, key="")
            raise exceptions.AuthenticationFailed(
                "Send the API key as 'Authorization: Bearer <key>'."
            )
        api_key = (
            ApiKey.objects.select_related("tenant")
            .filter(key_hash=hash_api_key(key.strip()), revoked_at__isnull=True)
            .first()
        )
        if api_key is None or not api_key.tenant.is_active:
            # Recorded only now: a valid key is never held back by its address's failures.
            api_key_failure_record(request=request, key=key.strip())
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        _touch(api_key)
        return api_key, api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="hookline"'


def api_key_of(request: Request) -> ApiKey:
    """The API key that authenticated `request`; every API view but the schema requires one."""
    api_key = request.auth
    if not isinstance(api_key, ApiKey):
        raise exceptions.NotAuthenticated()
    return api_key


def _touch(api_key: ApiKey) -> None:
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_PRECISION:
        ApiKey.objects.filter(id=api_key.id).update(last_used_at=now)


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Describes API keys in the OpenAPI schema."""

    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A tenant's API key."}
