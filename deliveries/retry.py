"""The retry policy: one pure function from an attempt's outcome to what happens next."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

RETRY_AFTER_CAP = 3600.0
JITTER = 0.2


class Action(Enum):
    SUCCEED = "succeed"
    RETRY = "retry"
    GIVE_UP = "give_up"
    DISABLE_ENDPOINT = "disable_endpoint"  # the receiver said 410 Gone


# Where an attempt moved its delivery, as logs and /metrics name it.
OUTCOMES = {
    Action.SUCCEED: "succeeded",
    Action.RETRY: "retry_scheduled",
    Action.GIVE_UP: "failed",
    Action.DISABLE_ENDPOINT: "failed",
}


def delivery_outcome(action: Action) -> str:
    """Where an attempt moved its delivery: `succeeded`, `retry_scheduled` or `failed`."""
    return OUTCOMES[action]


@dataclass(frozen=True)
class Decision:
    action: Action
    delay: float | None = None  # seconds until the next attempt, for RETRY


def decide(
    *,
    attempt_number: int,
    status: int | None,
    error_kind: str,
    retry_after: float | None,
    schedule: Sequence[float],
    retry_client_errors: bool = True,
    single_attempt: bool = False,
    rng: random.Random | None = None,
) -> Decision:
    """What to do after attempt `attempt_number` (1-based) of a delivery.

    2xx succeeds; 410 disables the endpoint; a target refused by the network policy is never
    retried; anything else is retried on `schedule` (delays with ±20 % jitter, at least what
    `Retry-After` asks, up to an hour) until the schedule runs out. Client errors other than 408 and
    429 are retried too unless `retry_client_errors` is off, as Svix and Stripe do. A
    `single_attempt` (a replay, manual or test send, as in Svix) gives up on its first failure.
    """
    if status is not None and 200 <= status < 300:
        return Decision(Action.SUCCEED)
    if status == 410:
        return Decision(Action.DISABLE_ENDPOINT)
    if error_kind == "blocked":
        return Decision(Action.GIVE_UP)
    if _is_final_client_error(status) and not retry_client_errors:
        return Decision(Action.GIVE_UP)
    if single_attempt or attempt_number > len(schedule):
        return Decision(Action.GIVE_UP)
    base = schedule[attempt_number - 1]
    delay = base * (rng or random).uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP))
    return Decision(Action.RETRY, delay)


def _is_final_client_error(status: int | None) -> bool:
    return status is not None and 400 <= status < 500 and status not in (408, 429)
