"""Endpoint ownership verification: when it applies, and the endpoint's side of the handshake.

When it applies to a tenant (`Tenant.verify_endpoints`, or WEBHOOKS_VERIFY_ENDPOINTS while that
is unset), a new endpoint, or one whose URL changed, is unverified (`verified_at` NULL) with a
fresh random challenge, and receives nothing but a signed `hookline.verification` message
carrying it until it echoes the challenge back (docs/verification.md). When it does not apply,
endpoints are trusted from the start: `verified_at` is set when they are saved.

The engine hears of each change inside its transaction: `endpoint_challenged` (it holds the
backlog and sends the challenge) and `endpoint_verified` (it lets the backlog go).
"""

from __future__ import annotations

import secrets
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from subscriptions.models import Endpoint, Tenant
from subscriptions.signals import endpoint_challenged, endpoint_verified

# 32 random bytes: 43 URL-safe characters, within verification_challenge's 64.
CHALLENGE_BYTES = 32


class EndpointVerifiedError(Exception):
    """The endpoint has answered its challenge already: there is nothing to retry."""


def verification_applies(tenant: Tenant) -> bool:
    """Whether the tenant's new endpoints, and those whose URL changes, must answer a challenge."""
    if tenant.verify_endpoints is not None:
        return tenant.verify_endpoints
    return bool(settings.WEBHOOKS_VERIFY_ENDPOINTS)


def verification_state(endpoint: Endpoint) -> str:
    """`verified` or `unverified`, as the API and the dashboard show it."""
    return "unverified" if endpoint.verified_at is None else "verified"


def endpoint_challenge(*, endpoint: Endpoint) -> bool:
    """Give the endpoint a fresh challenge: it is unverified, receives nothing else until it
    echoes it, and its pending deliveries wait (the engine holds them and sends the challenge,
    within the caller's transaction).

    When verification does not apply to the endpoint's tenant, the endpoint is trusted instead
    (`endpoint_trust`). Returns whether a challenge was issued.
    """
    if not verification_applies(endpoint.tenant):
        endpoint_trust(endpoint=endpoint)
        return False
    challenge = secrets.token_urlsafe(CHALLENGE_BYTES)
    with transaction.atomic():
        is_active = _locked(endpoint.id).is_active
        Endpoint.objects.filter(id=endpoint.id).update(
            verified_at=None, verification_challenge=challenge
        )
        endpoint_challenged.send(
            sender=Endpoint,
            endpoint_id=endpoint.id,
            tenant_id=endpoint.tenant_id,
            challenge=challenge,
            is_active=is_active,
        )
    endpoint.verified_at, endpoint.verification_challenge = None, challenge
    return True


def endpoint_url_changed(*, endpoint: Endpoint, previous_url: str) -> bool:
    """After an endpoint's URL was saved: a new URL must prove its ownership afresh (or, with
    verification off, is trusted). Returns whether a challenge was issued; call it in the
    transaction that saved the URL."""
    if endpoint.url == previous_url:
        return False
    return endpoint_challenge(endpoint=endpoint)


def endpoint_verification_retry(*, endpoint: Endpoint) -> bool:
    """Send an unverified endpoint a fresh challenge, superseding the one it has not echoed (a
    receiver fixed since, or a challenge that ran out of attempts). With verification off for
    its tenant, the endpoint is trusted at once and its held deliveries go.

    Returns whether a challenge was sent. Raises EndpointVerifiedError when the endpoint is
    verified already.
    """
    with transaction.atomic():
        if _locked(endpoint.id).verified_at is not None:
            raise EndpointVerifiedError("This endpoint is verified already.")
        return endpoint_challenge(endpoint=endpoint)


def endpoint_verify(*, endpoint_id: int, challenge: str, at: datetime) -> bool:
    """Mark the endpoint verified at `at` if `challenge` is the one it is waiting to echo; its
    held deliveries then go. Returns whether it was verified by this call: an echo of a
    challenge since replaced, or of an endpoint verified already, changes nothing."""
    if not challenge:
        return False
    with transaction.atomic():
        verified = Endpoint.objects.filter(
            id=endpoint_id, verified_at=None, verification_challenge=challenge
        ).update(verified_at=at, verification_challenge="")
        if verified:
            endpoint_verified.send(sender=Endpoint, endpoint_id=endpoint_id, at=at)
    return bool(verified)


def endpoint_trust(*, endpoint: Endpoint) -> bool:
    """Mark an unverified endpoint verified without a challenge (verification does not apply to
    it); its held deliveries go. Returns whether it was unverified."""
    now = timezone.now()
    with transaction.atomic():
        trusted = Endpoint.objects.filter(id=endpoint.id, verified_at=None).update(
            verified_at=now, verification_challenge=""
        )
        if trusted:
            endpoint_verified.send(sender=Endpoint, endpoint_id=endpoint.id, at=now)
    if trusted:
        endpoint.verified_at, endpoint.verification_challenge = now, ""
    return bool(trusted)


def _locked(endpoint_id: int) -> Endpoint:
    """The endpoint's row, locked until the transaction ends: a challenge, an echo and a held
    delivery's parking (deliveries.verification) see one another in order."""
    return (
        Endpoint.objects.select_for_update()
        .only("id", "is_active", "verified_at")
        .get(id=endpoint_id)
    )
