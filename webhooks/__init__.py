"""Hookline's event side. Host code emits events with `send_event`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from subscriptions.models import Tenant
    from webhooks.models import Event

__all__ = ["send_event"]


def send_event(
    tenant: Tenant | str,
    event_type: str,
    payload: dict[str, Any],
    *,
    idempotency_key: str | None = None,
    ordering_key: str | None = None,
) -> Event:
    """Emit an event to every endpoint of `tenant` subscribed to `event_type`.

    See `webhooks.services.event_send`, which this forwards to.
    """
    # Imported here: Django imports this package before its models are ready.
    from webhooks.services import event_send

    return event_send(
        tenant=tenant,
        event_type=event_type,
        payload=payload,
        idempotency_key=idempotency_key,
        ordering_key=ordering_key,
    )
