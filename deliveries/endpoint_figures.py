"""An endpoint's figures over a window of whole hours: what the stats API returns and what the
dashboard's endpoint page draws, from the same hourly counts (deliveries.hourly_stats) and the
same pending deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q

from deliveries.hourly_stats import Tally, hour_of, tally_of
from deliveries.models import Delivery, HourlyStat
from deliveries.selectors import Backlog, backlog_and_counts

# The windows the stats API offers, in hours: the current hour and those before it.
WINDOWS = {"1h": 1, "24h": 24, "7d": 24 * 7, "30d": 24 * 30}
# Among pending deliveries: conditions the partial index of pending deliveries answers alone.
RETRYING = Q(attempt_count__gt=0, waiting_on_key=False)
NOT_TRIED = Q(attempt_count=0, waiting_on_key=False)


def window_start(now: datetime, hours: int) -> datetime:
    """The start of a window of `hours` whole hours that ends with the one holding `now`."""
    return hour_of(now) - timedelta(hours=hours - 1)


@dataclass(frozen=True)
class EndpointFigures:
    since: datetime
    until: datetime
    tally: Tally
    backlog: Backlog
    retrying: int


def endpoint_figures(endpoint_id: int, *, hours: int, now: datetime) -> EndpointFigures:
    since = window_start(now, hours)
    tally = tally_of(HourlyStat.objects.filter(endpoint_id=endpoint_id, hour__gte=since))
    pending = Delivery.objects.filter(endpoint_id=endpoint_id, status=Delivery.Status.PENDING)
    backlog, live = backlog_and_counts(pending, at=now, retrying=Count("id", filter=RETRYING))
    return EndpointFigures(
        since=since, until=now, tally=tally, backlog=backlog, retrying=live["retrying"]
    )
