"""How the benchmark's processes emit events: each payload says when it was sent, for latency."""

from __future__ import annotations

import time

from subscriptions.models import Tenant
from webhooks import send_event, send_events

EVENT_TYPE = "bench.event"
BATCH_EVENTS = 100  # events per send_events call


def emit_burst(tenant: Tenant, count: int) -> float:
    """Emit `count` events as fast as one process can; returns the seconds it took."""
    started = time.perf_counter()
    for n in range(count):
        send_event(tenant, EVENT_TYPE, {"n": n, "sent_at": time.time()})
    return time.perf_counter() - started


def emit_batches(tenant: Tenant, count: int, size: int = BATCH_EVENTS) -> float:
    """Emit `count` events with send_events, `size` a call; returns the seconds it took."""
    started = time.perf_counter()
    for first in range(0, count, size):
        sent_at = time.time()
        items = [(EVENT_TYPE, {"n": n, "sent_at": sent_at}) for n in range(first, first + size)]
        send_events(tenant, items[: count - first])
    return time.perf_counter() - started


def emit_steady(tenant: Tenant, rate: float, seconds: float) -> int:
    """Emit `rate` events a second for `seconds`; returns how many were emitted."""
    count = int(rate * seconds)
    started = time.perf_counter()
    for n in range(count):
        pause = started + n / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        send_event(tenant, EVENT_TYPE, {"n": n, "sent_at": time.time()})
    return count
