"""Writes for tenants, API keys, event types and endpoints."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from typing import Any

from django.db import transaction

from subscriptions.models import ApiKey, Endpoint, EventType, Tenant

API_KEY_PREFIX = "hl_"


def hash_api_key(key: str) -> str:
    # Keys carry 256 random bits, so a plain SHA-256 cannot be brute-forced.
    return hashlib.sha256(key.encode()).hexdigest()


def tenant_create(*, slug: str, name: str = "") -> Tenant:
    """Create a tenant; raises ValidationError for a bad or taken slug."""
    tenant = Tenant(slug=slug, name=name or slug)
    tenant.full_clean()
    tenant.save()
    return tenant


def api_key_create(*, tenant: Tenant, name: str = "", is_staff: bool = False) -> tuple[ApiKey, str]:
    """Issue a new API key for `tenant`. Returns the row and the key, which is never stored."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        tenant=tenant,
        name=name,
        prefix=key[:10],
        key_hash=hash_api_key(key),
        is_staff=is_staff,
    )
    return api_key, key


def event_type_create(
    *, name: str, description: str = "", schema: dict[str, Any] | None = None
) -> EventType:
    """Add an event type to the catalog; raises ValidationError for a bad or taken name."""
    event_type = EventType(name=name, description=description, schema=schema)
    event_type.full_clean()
    event_type.save()
    return event_type


def endpoint_create(
    *,
    tenant: Tenant,
    url: str,
    description: str = "",
    event_types: Iterable[EventType] = (),
    headers: dict[str, str] | None = None,
    secret: str | None = None,
) -> Endpoint:
    """Register an endpoint; raises ValidationError for a URL Hookline would not deliver to."""
    endpoint = Endpoint(tenant=tenant, url=url, description=description, headers=headers or {})
    if secret:
        endpoint.secret = secret
    endpoint.full_clean()
    with transaction.atomic():
        endpoint.save()
        endpoint.event_types.set(list(event_types))
    return endpoint
