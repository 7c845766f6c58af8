"""Numbers for the overview and endpoint pages: counts, success rates, latency, the hourly chart
and the backlog.

What happened in the window is read from the hourly counts the workers keep
(deliveries.hourly_stats): a few rows per endpoint and hour, however many attempts are stored.
What is true now (retrying, pending, the backlog) is counted from the pending deliveries.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Case, Count, IntegerField, OuterRef, QuerySet, Subquery, Value, When
from django.utils import timezone

from dashboard.access import Viewer
from dashboard.status import Pill
from deliveries import endpoint_figures
from deliveries.hourly_stats import Tally, tallies_by_endpoint, tallies_by_hour, tally_of
from deliveries.models import Delivery, HourlyStat
from deliveries.selectors import Backlog, backlog_and_counts
from subscriptions.models import Endpoint

# The window is the current hour and the 23 before it, the chart's hours.
CHART_HOURS = 24
# Dead letters are counted up to this, then shown as "1,000+".
DEAD_COUNT_CAP = 1000
# FILTERS' retrying and pending, without their `status`: they count rows already filtered to
# pending ones, so that the partial index of pending deliveries answers alone.
RETRYING, PENDING = endpoint_figures.RETRYING, endpoint_figures.NOT_TRIED

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
    """Deliveries delivered and given up on in the window, its attempts and their latency; those
    retrying and pending now."""

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
    backlog: Backlog


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


def window_start(now: datetime) -> datetime:
    """The start of the window that ends at `now`: the current hour and the 23 before it."""
    return endpoint_figures.window_start(now, CHART_HOURS)


def scope_hours(viewer: Viewer) -> QuerySet[HourlyStat]:
    """The hourly counts of the endpoints the viewer may see."""
    return HourlyStat.objects.filter(endpoint__tenant__in=viewer.scope())


def _outcomes(tally: Tally) -> Outcomes:
    return Outcomes(
        delivered=tally.succeeded,
        dead=tally.dead,
        attempts=tally.attempts,
        ok_attempts=tally.succeeded,
        latency=Latency(p50=tally.percentile_ms(50), p95=tally.percentile_ms(95)),
    )


def summary(viewer: Viewer, now: datetime) -> Summary:
    """The overview cards for the viewer's scope (every tenant, for staff): the window's
    outcomes, and the pending deliveries by what they wait for, counted in one query."""
    outcomes = _outcomes(tally_of(scope_hours(viewer).filter(hour__gte=window_start(now))))
    pending = viewer.deliveries().filter(status=Delivery.Status.PENDING)
    backlog, live = backlog_and_counts(
        pending, at=now, retrying=Count("id", filter=RETRYING), pending=Count("id", filter=PENDING)
    )
    outcomes.retrying, outcomes.pending = live["retrying"], live["pending"]
    return Summary(outcomes=outcomes, retrying_now=live["retrying"], backlog=backlog)


class CappedCount(Subquery):
    """How many rows a subquery returns, reading at most the `[:n]` it is sliced to: a count
    that stops at a cap instead of reading every dead letter of an endpoint."""

    template = "(SELECT count(*) FROM (%(subquery)s) AS capped)"
    output_field = IntegerField()


def dead_letters_capped() -> CappedCount:
    """An endpoint's dead letters, counted up to DEAD_COUNT_CAP + 1 (shown as "1,000+"), on the
    partial index of failed deliveries; for a query over endpoints."""
    dead = Delivery.objects.filter(endpoint=OuterRef("pk"), status=Delivery.Status.FAILED)
    return CappedCount(dead.order_by().values("id")[: DEAD_COUNT_CAP + 1])


def endpoints_by_trouble(endpoints: QuerySet[Endpoint]) -> QuerySet[Endpoint]:
    """Failing first, then disabled, then active; within each, most dead letters first (counted up
    to the cap), then URL."""
    rank = Case(
        When(is_active=True, failing_since__isnull=False, then=Value(0)),
        When(is_active=False, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    return endpoints.annotate(dead_total=dead_letters_capped(), trouble=rank).order_by(
        "trouble", "-dead_total", "url", "id"
    )


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
    """Per endpoint: the window's outcomes and latency, and its deliveries retrying and pending."""
    result: defaultdict[int, Outcomes] = defaultdict(Outcomes)
    if not endpoint_ids:
        return result
    hours = HourlyStat.objects.filter(endpoint_id__in=endpoint_ids, hour__gte=window_start(now))
    for endpoint_id, tally in tallies_by_endpoint(hours).items():
        result[endpoint_id] = _outcomes(tally)
    live = (
        Delivery.objects.filter(endpoint_id__in=endpoint_ids, status=Delivery.Status.PENDING)
        .order_by()
        .values("endpoint_id")
        .annotate(retrying=Count("id", filter=RETRYING), pending=Count("id", filter=PENDING))
    )
    for counts in live:
        outcome = result[counts["endpoint_id"]]
        outcome.retrying, outcome.pending = counts["retrying"], counts["pending"]
    return result


def hourly_attempts(hours: QuerySet[HourlyStat], now: datetime) -> list[HourBucket]:
    """Attempts per hour, succeeded vs failed: the current hour and the 23 before it, each
    labelled with its start in the current time zone."""
    start = window_start(now)
    counts = tallies_by_hour(hours.filter(hour__gte=start))
    buckets = []
    for index in range(CHART_HOURS):
        hour = start + timedelta(hours=index)
        tally = counts.get(hour, Tally())
        buckets.append(
            HourBucket(
                hour=timezone.localtime(hour), succeeded=tally.succeeded, failed=tally.failed
            )
        )
    return buckets


def dead_since_counts(endpoint: Endpoint, moments: dict[str, datetime]) -> dict[str, int]:
    """Dead letters of `endpoint` created since each moment, and "total", each counted up to
    DEAD_COUNT_CAP + 1, from one read of its newest dead letters (ids grow with creation)."""
    dead = Delivery.objects.filter(endpoint=endpoint, status=Delivery.Status.FAILED)
    newest = list(dead.order_by("-id").values_list("created_at", flat=True)[: DEAD_COUNT_CAP + 1])
    counts = {key: sum(1 for created in newest if created >= at) for key, at in moments.items()}
    return {**counts, "total": len(newest)}
