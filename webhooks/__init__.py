"""Hookline's event side. Host code emits events with `send_event`, or many with `send_events`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from subscriptions.models import Tenant
    from webhooks.batches import ItemResult
    from webhooks.models import Event

__all__ = ["send_event", "send_events"]


def send_event(
    tenant: Tenant | str,
    event_type: str,
    payload: dict[str, Any],
    *,
    idempotency_key: str | None = None,
    ordering_key: str | None = None,
    channels: Sequence[str] | None = None,
) -> Event:
    """Emit an event to every endpoint of `tenant` subscribed to `event_type` (with `channels`,
    to those of them that share one of the channels).

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
        channels=channels,
    )


def send_events(
    tenant: Tenant | str, items: Sequence[Sequence[Any]], *, atomic: bool = False
) -> list[ItemResult]:
    """Emit up to 500 events in one transaction; returns a result per item, in order.

    Each item is `(event_type, payload)` or `(event_type, payload, {"idempotency_key": …,
    "ordering_key": …, "channels": […]})`. See `webhooks.batches.events_send`, which this
    forwards to.
    """
    from webhooks.batches import events_send

    return events_send(tenant=tenant, items=items, atomic=atomic)
