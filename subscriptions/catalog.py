"""The event-type catalog as the emit path reads it: by name, from a short per-process cache.

Emitting an event would otherwise spend a query on a row that almost never changes. The cache
is only a hint: the statement that stores the event checks, in the database, that the type
still exists and is not archived, and asks for a fresh lookup if not. What the cache can delay
is a schema change made by another process, by at most `CACHE_SECONDS`; a change saved in this
process applies at once.
"""

from __future__ import annotations

import time

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from subscriptions.models import EventType

CACHE_SECONDS = 5.0

_by_name: dict[str, tuple[float, EventType]] = {}


def event_type_by_name(name: str) -> EventType | None:
    """The event type called `name`, archived or not; None when there is none."""
    if "\x00" in name:
        return None  # no name holds NUL, and PostgreSQL refuses it even in a lookup
    cached = _by_name.get(name)
    if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
        return cached[1]
    kind = EventType.objects.filter(name=name).first()
    if kind is None:
        _by_name.pop(name, None)
    else:
        _by_name[name] = (time.monotonic(), kind)
    return kind


def event_types_forget() -> None:
    _by_name.clear()


@receiver(post_save, sender=EventType)
@receiver(post_delete, sender=EventType)
def _forget_on_change(**_: object) -> None:
    event_types_forget()
