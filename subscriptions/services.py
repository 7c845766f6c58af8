"""Writes for tenants, API keys, event types and endpoints."""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from config.signals import send_robustly
from subscriptions.encryption import PreviousSecret
from subscriptions.filters import filter_problem
from subscriptions.models import (
    MAX_PREVIOUS_SECRETS,
    ApiKey,
    Endpoint,
    EventType,
    OrganisationKey,
    Tenant,
    generate_signing_secret,
)
from subscriptions.signals import endpoint_disabled, endpoint_enabling, endpoints_disabling
from subscriptions.verification import (
    endpoint_challenge,
    endpoint_url_changed,
    verification_applies,
)
from webhooks.transformations import transformation_problem

API_KEY_PREFIX = "hl_"
# Disjoint from API keys' ("hl_" is never followed by "o_"), so a key's kind shows in its text.
ORGANISATION_KEY_PREFIX = "hlo_"
# What a key's `prefix` keeps: its kind's prefix and 7 more characters.
SHOWN_KEY_CHARACTERS = 7


def hash_api_key(key: str) -> str:
    # Keys carry 256 random bits, so a plain SHA-256 cannot be brute-forced.
    return hashlib.sha256(key.encode()).hexdigest()


def _new_key(kind_prefix: str) -> tuple[str, str, str]:
    """A new key of a kind: (the key, the prefix shown to people, its hash)."""
    key = kind_prefix + secrets.token_urlsafe(32)
    return key, key[: len(kind_prefix) + SHOWN_KEY_CHARACTERS], hash_api_key(key)


def tenant_create(
    *,
    slug: str,
    name: str = "",
    is_active: bool = True,
    delivery_weight: int = 1,
    verify_endpoints: bool | None = None,
    max_events_per_second: int | None = None,
    retention_days: int | None = None,
) -> Tenant:
    """Create a tenant; raises ValidationError for a bad or taken slug or a value out of range."""
    tenant = Tenant(
        slug=slug,
        name=name or slug,
        is_active=is_active,
        delivery_weight=delivery_weight,
        verify_endpoints=verify_endpoints,
        max_events_per_second=max_events_per_second,
        retention_days=retention_days,
    )
    tenant.full_clean()
    tenant.save()
    return tenant


# What tenant_update may change: never the slug, which URLs and portal sessions name.
TENANT_SETTINGS = frozenset(
    {"name", "is_active", "delivery_weight", "verify_endpoints", "max_events_per_second",
     "retention_days"}
)  # fmt: skip


def tenant_update(*, tenant: Tenant, changes: dict[str, Any]) -> Tenant:
    """Change the tenant's settings named in `changes` (TENANT_SETTINGS), only those columns.

    Raises ValidationError, changing nothing, for a value out of range or a field that is not a
    setting. A new `max_events_per_second` applies from the next emit on; a new
    `retention_days` from the next retention run.
    """
    unknown = set(changes) - TENANT_SETTINGS
    if unknown:
        raise ValidationError(f"Not a tenant setting: {', '.join(sorted(unknown))}.")
    for field, value in changes.items():
        setattr(tenant, field, value)
    tenant.full_clean(exclude=["slug", "members"], validate_unique=False)
    if changes:
        tenant.save(update_fields=list(changes))
    return tenant


def tenant_deactivate(*, tenant: Tenant) -> None:
    """Deactivate a tenant, deleting nothing: its API keys are refused, its portal links and
    the sessions they opened end, and `send_event` refuses its events (TenantInactiveError).
    Its pending deliveries still go. Setting `is_active` again undoes all of it."""
    Tenant.objects.filter(id=tenant.id).update(is_active=False)
    tenant.is_active = False


def api_key_create(*, tenant: Tenant, name: str = "", is_staff: bool = False) -> tuple[ApiKey, str]:
    """Issue a new API key for `tenant`. Returns the row and the key, which is never stored."""
    key, prefix, key_hash = _new_key(API_KEY_PREFIX)
    api_key = ApiKey.objects.create(
        tenant=tenant, name=name, prefix=prefix, key_hash=key_hash, is_staff=is_staff
    )
    return api_key, key


def api_key_revoke(*, api_key: ApiKey) -> None:
    """Revoke the key (once: a second call keeps the first time); it is refused from now on."""
    ApiKey.objects.filter(id=api_key.id, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key.refresh_from_db(fields=["revoked_at"])


def organisation_key_issue(*, organisation_key: OrganisationKey) -> str:
    """Give an unsaved organisation key its secret and store it. Returns the key, which is
    never stored (only its hash)."""
    key, organisation_key.prefix, organisation_key.key_hash = _new_key(ORGANISATION_KEY_PREFIX)
    organisation_key.save()
    return key


def organisation_key_create(*, name: str) -> tuple[OrganisationKey, str]:
    """Issue a new organisation key. Returns the row and the key, which is never stored."""
    organisation_key = OrganisationKey(name=name)
    return organisation_key, organisation_key_issue(organisation_key=organisation_key)


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
    filter: str = "",
) -> Endpoint:
    """Register an endpoint; raises ValidationError for a URL Hookline would not deliver to, a
    filter it would not evaluate (subscriptions.filters), or when the tenant already has
    WEBHOOKS_MAX_ENDPOINTS_PER_TENANT endpoints."""
    endpoint = Endpoint(
        tenant=tenant, url=url, description=description, headers=headers or {}, filter=filter
    )
    if secret:
        endpoint.secret = secret
    endpoint.full_clean()
    return endpoint_add(endpoint=endpoint, event_types=event_types)


def endpoint_add(*, endpoint: Endpoint, event_types: Iterable[EventType] | None = None) -> Endpoint:
    """Store a new endpoint its caller has validated (endpoint_create, the API's serializer, the
    admin's form), with its event types when given.

    Raises ValidationError when its tenant already has WEBHOOKS_MAX_ENDPOINTS_PER_TENANT
    endpoints; two requests racing for the last free place cannot both get it. When ownership
    verification applies to the tenant, the endpoint starts unverified and is sent its challenge
    (subscriptions.verification).
    """
    with transaction.atomic():
        endpoint_limit_check(tenant_id=endpoint.tenant_id)
        endpoint.save()
        if event_types is not None:
            endpoint.event_types.set(list(event_types))
        if verification_applies(endpoint.tenant):
            endpoint_challenge(endpoint=endpoint)
    return endpoint


def endpoint_limit_check(*, tenant_id: int) -> None:
    """Raise ValidationError if the tenant may not have one more endpoint.

    Call it inside a transaction: it locks the tenant's row until that transaction ends, so the
    answer holds until the caller has saved its endpoint (a concurrent check waits).
    """
    limit = settings.WEBHOOKS_MAX_ENDPOINTS_PER_TENANT
    if not limit:
        return
    list(Tenant.objects.select_for_update().filter(id=tenant_id).values("id"))
    if Endpoint.objects.filter(tenant_id=tenant_id).count() >= limit:
        raise ValidationError(
            f"This tenant already has {limit} endpoints, the most it may have; delete one "
            "before adding another.",
            code="endpoint_limit",
        )


def endpoint_disable(*, endpoint_ids: Iterable[int], reason: str) -> list[Endpoint]:
    """Disable the active endpoints among `endpoint_ids`; pending deliveries to them wait.

    Returns the endpoints this call disabled. Within the transaction, `endpoints_disabling` lets
    the engine hold their backlogs; once the caller's transaction commits, `endpoint_disabled`
    fires for each (operations then emails the tenant's members and the operators, and sends the
    operational webhook).
    """
    now = timezone.now()
    with transaction.atomic():
        endpoints = list(
            Endpoint.objects.select_for_update()
            .filter(id__in=list(endpoint_ids), is_active=True)
            .select_related("tenant")
        )
        for endpoint in endpoints:
            endpoint.is_active, endpoint.disabled_at, endpoint.disabled_reason = False, now, reason
        Endpoint.objects.bulk_update(endpoints, ["is_active", "disabled_at", "disabled_reason"])
        endpoints_disabling.send(sender=Endpoint, endpoint_ids=[e.id for e in endpoints])
    for endpoint in endpoints:
        transaction.on_commit(
            functools.partial(
                send_robustly,
                endpoint_disabled,
                sender=Endpoint,
                endpoint=endpoint,
                reason=endpoint.disabled_reason,
            )
        )
    return endpoints


def endpoint_enable(*, endpoint: Endpoint) -> None:
    """Enable an endpoint again, with a clean health record and a closed circuit; its waiting
    deliveries resume (the engine hears `endpoint_enabling` within the transaction)."""
    fresh = {
        "is_active": True,
        "disabled_at": None,
        "disabled_reason": "",
        "failing_since": None,
        "consecutive_failures": 0,
        "circuit_open_until": None,
    }
    now = timezone.now()
    with transaction.atomic():
        paused_until = (
            Endpoint.objects.select_for_update()
            .filter(id=endpoint.id)
            .values_list("circuit_open_until", flat=True)
            .first()
        )
        Endpoint.objects.filter(id=endpoint.id).update(**fresh)
        endpoint_enabling.send(
            sender=Endpoint, endpoint_id=endpoint.id, paused_until=paused_until, at=now
        )
    endpoint.refresh_from_db(fields=list(fresh))


@dataclass(frozen=True)
class SecretRotation:
    """What a rotation hands back: the new secret (shown once) and when the one it replaced
    stops signing."""

    secret: str
    previous_secret_expires_at: datetime


def endpoint_rotate_secret(
    *, endpoint: Endpoint, overlap_seconds: int | None = None
) -> SecretRotation:
    """Give the endpoint a new signing secret; the old one keeps signing alongside for the overlap.

    Every secret replaced earlier keeps signing until its own promised expiry, so rotating twice
    within an overlap leaves three secrets signing. At most MAX_PREVIOUS_SECRETS replaced secrets
    are kept: beyond that, the one expiring soonest stops signing early. `overlap_seconds`
    defaults to WEBHOOKS_SECRET_ROTATION_OVERLAP; 0 retires the old secret at once (for a leaked
    one).
    """
    overlap = (
        settings.WEBHOOKS_SECRET_ROTATION_OVERLAP if overlap_seconds is None else overlap_seconds
    )
    now = timezone.now()
    expires_at = now + timedelta(seconds=overlap)
    with transaction.atomic():
        locked = Endpoint.objects.select_for_update().get(id=endpoint.id)
        replaced = PreviousSecret(secret=locked.secret, expires_at=expires_at)
        locked.previous_secrets = _previous_secrets_kept(
            [replaced, *locked.previous_secrets], now=now
        )
        locked.secret = generate_signing_secret()
        locked.save(update_fields=["secret", "previous_secrets"])
    endpoint.refresh_from_db(fields=["secret", "previous_secrets"])
    return SecretRotation(secret=locked.secret, previous_secret_expires_at=expires_at)


def _previous_secrets_kept(
    candidates: list[PreviousSecret], *, now: datetime
) -> list[PreviousSecret]:
    """The unexpired ones, latest expiry first, cut at the cap (the soonest to expire go)."""
    alive = [previous for previous in candidates if previous.expires_at > now]
    alive.sort(key=lambda previous: previous.expires_at, reverse=True)
    return alive[:MAX_PREVIOUS_SECRETS]


def endpoint_set_filter(*, endpoint: Endpoint, filter: str) -> None:
    """Give the endpoint a filter (blank: none), which chooses its events from the next emit on.
    Raises ValidationError, naming the field, for one that `subscriptions.filters` refuses;
    nothing changes then."""
    expression = filter.strip()
    problem = filter_problem(expression)
    if problem is not None:
        raise ValidationError({"filter": problem})
    endpoint.filter = expression
    endpoint.save(update_fields=["filter", "updated_at"])


def endpoint_set_transformation(*, endpoint: Endpoint, transformation: str) -> None:
    """Give the endpoint a transformation (blank: none), used from its next attempt on, waiting
    deliveries and replays included. Raises ValidationError, naming the field, for one that
    `webhooks.transformations` refuses; nothing changes then."""
    problem = transformation_problem(transformation)
    if problem is not None:
        raise ValidationError({"transformation": problem})
    endpoint.transformation = transformation
    endpoint.save(update_fields=["transformation", "updated_at"])


def endpoint_update(
    *, endpoint: Endpoint, previous_url: str, event_types: Iterable[EventType] | None = None
) -> None:
    """Store the changes made to an endpoint its caller has validated (the dashboard's form), and
    its event types when given. A new URL must prove its ownership afresh when verification
    applies (subscriptions.verification), as through the API."""
    with transaction.atomic():
        endpoint.save()
        if event_types is not None:
            endpoint.event_types.set(list(event_types))
        endpoint_url_changed(endpoint=endpoint, previous_url=previous_url)


def endpoint_delete(*, endpoint: Endpoint) -> None:
    """Delete the endpoint with its deliveries and their attempts, as the API's DELETE does."""
    endpoint.delete()
