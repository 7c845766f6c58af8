"""What a worker holds and what came of it: a claim on deliveries, and each one's outcome."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from deliveries.models import Attempt, Delivery
from deliveries.retry import Decision


@dataclass(frozen=True)
class Claim:
    token: str
    expires_at: datetime
    deliveries: list[Delivery]
    # It took all it was allowed: more is due than one batch, and another worker may help.
    full: bool = False


@dataclass(frozen=True)
class Outcome:
    delivery: Delivery
    attempt: Attempt
    decision: Decision
