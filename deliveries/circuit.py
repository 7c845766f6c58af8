"""The circuit breaker's policy: when a failing endpoint is paused, and for how long.

An endpoint that keeps failing is not sent every message it has queued: after
`WEBHOOKS_CIRCUIT_FAILURES` failed attempts in a row its circuit opens, and workers leave its
deliveries alone (their retry counts do not move). When the cooldown ends, one delivery goes as
a probe: a success closes the circuit and the backlog drains; a failure reopens it for twice
as long, up to `MAX_COOLDOWN_SECONDS`.
"""

from __future__ import annotations

MAX_COOLDOWN_SECONDS = 15 * 60


def failure_streak(previous: int, succeeded_in_order: list[bool]) -> int:
    """Failed attempts in a row after a batch whose outcomes were `succeeded_in_order`."""
    streak = previous
    for succeeded in succeeded_in_order:
        streak = 0 if succeeded else streak + 1
    return streak


def cooldown_seconds(streak: int, *, threshold: int, base: float) -> float | None:
    """How long the circuit stays open after `streak` failures in a row; None: it stays closed."""
    if streak < threshold:
        return None
    doublings = min(streak - threshold, 20)
    return min(MAX_COOLDOWN_SECONDS, base * 2**doublings)
