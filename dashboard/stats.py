"""Numbers for the overview and endpoint pages: counts, success rates, latency, the hourly chart
and the backlog.

Counting and grouping happen in the database; only latency percentiles are computed in Python, on
a capped sample of attempt durations (see LATENCY_SAMPLE).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Case, Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce, TruncHour
from django.utils import timezone

from dashboard.access import Viewer
from dashboard.status import FILTERS, Pill
from deliveries.models import Attempt, Delivery
from deliveries.selectors import Backlog, backlogs_by_tenant
from subscriptions.models import Endpoint

WINDOW = timedelta(hours=24)
CHART_HOURS = 24
# Percentiles are computed in Python from at most this many of the window's latest attempt
# durations: enough for a stable p95, while a busy scope never loads every attempt into memory.
# Per-endpoint percentiles come from the same sample, so a quiet endpoint whose attempts all
# fall outside it shows "—" rather than a number computed from nothing.
LATENCY_SAMPLE = 5000

OK_ATTEMPT = Q(response_status__gte=200, response_status__lt=300, error_kind="")
DELIVERED = Q(**FILTERS["delivered"])
RETRYING = Q(**FILTERS["retrying"])
PENDING = Q(**FILTERS["pending"])
DEAD = Q(**FILTERS["dead"])

ACTIVE = Pill("Active", "●", "active", "Deliveries are being attempted as events arrive.")
FAILING = Pill(
    "Failing",
    "▲",
    "failing",
    "Every attempt has failed since the time shown.\nFix the receiver; the next success clears it.",
)
DISABLED = Pill(
    "Disabled",
    "⏸",
    "disabled",
    "Nothing is sent: pending deliveries wait, and new events skip it until it is enabled.",
)

UNVERIFIED = Pill(
    "Unverified",
    "?",
    "unverified",
    "It has not echoed its ownership challenge: it receives nothing else, and its events wait.",
)


@dataclass(frozen=True)
class Latency:
    p50: float | None = None
    p95: float | None = None


@dataclass
class Outcomes:
    """Deliveries created in the window, by where they are now, and the window's attempts."""

    delivered: int = 0
    retrying: int = 0
    pending: int = 0
    dead: int = 0
    attempts: int = 0
    ok_attempts: int = 0
    latency: Latency = field(default_factory=Latency)

    @property
    def success_rate(self) -> float | None:
        """Attempts answered 2xx, in percent; None without attempts."""
        return 100 * self.ok_attempts / self.attempts if self.attempts else None


@dataclass(frozen=True)
class Summary:
    """The overview cards: the window's outcomes plus what is retrying right now."""

    outcomes: Outcomes
    retrying_now: int


@dataclass(frozen=True)
class EndpointRow:
    endpoint: Endpoint
    pill: Pill
    pill_title: str
    outcomes: Outcomes
    dead_total: int


@dataclass(frozen=True)
class HourBucket:
    hour: datetime
    succeeded: int
    failed: int


def endpoint_pill(endpoint: Endpoint) -> tuple[Pill, str]:
    """The endpoint's state pill and its two-line title (meaning, then the way out)."""
    if not endpoint.is_active:
        when = f" on {endpoint.disabled_at:%Y-%m-%d %H:%M %Z}" if endpoint.disabled_at else ""
        reason = endpoint.disabled_reason or "Disabled by an operator."
        return DISABLED, f"Disabled{when}: {reason}\n{DISABLED.meaning}"
    if endpoint.verified_at is None:
        return (
            UNVERIFIED,
            f"{UNVERIFIED.meaning}\nMake the receiver answer it, then send a new challenge.",
        )
    if endpoint.failing_since:
        since = f"{endpoint.failing_since:%Y-%m-%d %H:%M %Z}"
        return FAILING, f"Failing since {since}.\nFix the receiver; the next success clears it."
    return ACTIVE, ACTIVE.meaning


def percentile(values: Sequence[float], percent: float) -> float | None:
    """Nearest-rank percentile of already sorted `values`; None when empty."""
    if not values:
        return None
    rank = max(1, math.ceil(percent / 100 * len(values)))
    return values[rank - 1]


def latency_of(durations: Iterable[float]) -> Latency:
    ordered = sorted(durations)
    return Latency(p50=percentile(ordered, 50), p95=percentile(ordered, 95))


def scope_attempts(viewer: Viewer, since: datetime) -> QuerySet[Attempt]:
    """Attempts started since `since` on deliveries the viewer may see."""
    return Attempt.objects.filter(
        delivery__endpoint__tenant__in=viewer.scope(), started_at__gte=since
    )


def summary(viewer: Viewer, now: datetime) -> Summary:
    """The overview cards for the viewer's scope over the last 24 hours."""
    since = now - WINDOW
    counts = (
        viewer.deliveries()
        .filter(created_at__gte=since)
        .aggregate(
            delivered=Count("id", filter=DELIVERED),
            retrying=Count("id", filter=RETRYING),
            pending=Count("id", filter=PENDING),
            dead=Count("id", filter=DEAD),
        )
    )
    attempts = scope_attempts(viewer, since)
    tally = attempts.aggregate(total=Count("id"), ok=Count("id", filter=OK_ATTEMPT))
    sample = attempts.order_by("-started_at").values_list("duration_ms", flat=True)
    outcomes = Outcomes(
        **counts,
        attempts=tally["total"],
        ok_attempts=tally["ok"],
        latency=latency_of(sample[:LATENCY_SAMPLE]),
    )
    retrying_now = viewer.deliveries().filter(RETRYING).count()
    return Summary(outcomes=outcomes, retrying_now=retrying_now)


def backlog(viewer: Viewer, now: datetime) -> Backlog:
    """The pending deliveries in the viewer's scope (every tenant, for staff) by what they wait
    for, in one query."""
    return sum(backlogs_by_tenant(tenants=viewer.scope(), at=now).values(), Backlog())


def endpoints_by_trouble(endpoints: QuerySet[Endpoint]) -> QuerySet[Endpoint]:
    """Failing first, then disabled, then active; within each, most dead letters first, then URL."""
    dead = (
        Delivery.objects.filter(endpoint=OuterRef("pk"), status=Delivery.Status.FAILED)
        .order_by()
        .values("endpoint")
        .annotate(n=Count("id"))
        .values("n")
    )
    rank = Case(
        When(is_active=True, failing_since__isnull=False, then=Value(0)),
        When(is_active=False, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    return endpoints.annotate(
        dead_total=Coalesce(Subquery(dead, output_field=IntegerField()), 0), trouble=rank
    ).order_by("trouble", "-dead_total", "url", "id")


def endpoint_rows(endpoints: Sequence[Endpoint], now: datetime) -> list[EndpointRow]:
    """24-hour outcomes, success rate and latency for each endpoint, in a fixed number of queries.

    `endpoints` must come from `endpoints_by_trouble` (for `dead_total`).
    """
    outcomes = endpoint_outcomes([endpoint.id for endpoint in endpoints], now)
    rows = []
    for endpoint in endpoints:
        pill, title = endpoint_pill(endpoint)
        rows.append(
            EndpointRow(
                endpoint=endpoint,
                pill=pill,
                pill_title=title,
                outcomes=outcomes[endpoint.id],
                dead_total=endpoint.dead_total,  # type: ignore[attr-defined]  # annotated
            )
        )
    return rows


def endpoint_outcomes(endpoint_ids: list[int], now: datetime) -> dict[int, Outcomes]:
    """Per endpoint: deliveries created in the last 24 h by outcome, attempts, and latency."""
    since = now - WINDOW
    result: defaultdict[int, Outcomes] = defaultdict(Outcomes)
    if not endpoint_ids:
        return result
    deliveries = (
        Delivery.objects.filter(endpoint_id__in=endpoint_ids, created_at__gte=since)
        .order_by()
        .values("endpoint_id")
        .annotate(
            delivered=Count("id", filter=DELIVERED),
            retrying=Count("id", filter=RETRYING),
            pending=Count("id", filter=PENDING),
            dead=Count("id", filter=DEAD),
        )
    )
    for counts in deliveries:
        outcome = result[counts["endpoint_id"]]
        outcome.delivered, outcome.retrying = counts["delivered"], counts["retrying"]
        outcome.pending, outcome.dead = counts["pending"], counts["dead"]
    attempts = Attempt.objects.filter(delivery__endpoint_id__in=endpoint_ids, started_at__gte=since)
    tallies = (
        attempts.order_by()
        .values("delivery__endpoint_id")
        .annotate(total=Count("id"), ok=Count("id", filter=OK_ATTEMPT))
    )
    for row in tallies:
        outcome = result[row["delivery__endpoint_id"]]
        outcome.attempts, outcome.ok_attempts = row["total"], row["ok"]
    durations: defaultdict[int, list[float]] = defaultdict(list)
    sample = attempts.order_by("-started_at").values_list("delivery__endpoint_id", "duration_ms")
    for endpoint_id, duration in sample[:LATENCY_SAMPLE]:
        durations[endpoint_id].append(duration)
    for endpoint_id, values in durations.items():
        result[endpoint_id].latency = latency_of(values)
    return result


def hourly_attempts(attempts: QuerySet[Attempt], now: datetime) -> list[HourBucket]:
    """Attempts per hour, succeeded vs failed: the current hour and the 23 before it."""
    # Hours of the current time zone, as TruncHour groups them (they differ from UTC's hours
    # only in zones with a fractional offset).
    current = timezone.localtime(now).replace(minute=0, second=0, microsecond=0)
    start = current - timedelta(hours=CHART_HOURS - 1)
    grouped = (
        attempts.filter(started_at__gte=start)
        .annotate(hour=TruncHour("started_at"))
        .order_by()
        .values("hour")
        .annotate(total=Count("id"), ok=Count("id", filter=OK_ATTEMPT))
    )
    counts = {row["hour"]: (row["ok"], row["total"] - row["ok"]) for row in grouped}
    buckets = []
    for index in range(CHART_HOURS):
        hour = start + timedelta(hours=index)
        succeeded, failed = counts.get(hour, (0, 0))
        buckets.append(HourBucket(hour=hour, succeeded=succeeded, failed=failed))
    return buckets


def dead_count(endpoint: Endpoint, cap: int) -> int:
    """The endpoint's dead letters, counted up to `cap` + 1 (shown as "1,000+")."""
    dead = Delivery.objects.filter(endpoint=endpoint, status=Delivery.Status.FAILED)
    return len(dead.values_list("id", flat=True)[: cap + 1])


def dead_since_counts(endpoint: Endpoint, moments: dict[str, datetime], cap: int) -> dict[str, int]:
    """Dead letters of `endpoint` created since each moment, each counted up to `cap` + 1."""
    dead = Delivery.objects.filter(endpoint=endpoint, status=Delivery.Status.FAILED)
    return {
        key: len(dead.filter(created_at__gte=moment).values_list("id", flat=True)[: cap + 1])
        for key, moment in moments.items()
    }
