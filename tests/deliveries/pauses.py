"""Moving a paused endpoint through time in tests."""

from __future__ import annotations

from django.utils import timezone

from deliveries.models import Delivery
from subscriptions.models import Endpoint


def reopen_now(endpoint: Endpoint) -> None:
    """The cooldown ended: the circuit is half-open, and what waited for it is due."""
    now = timezone.now()
    until = Endpoint.objects.get(id=endpoint.id).circuit_open_until
    Delivery.objects.filter(endpoint=endpoint, next_attempt_at__lte=until).update(
        next_attempt_at=now
    )
    Endpoint.objects.filter(id=endpoint.id).update(circuit_open_until=now)
