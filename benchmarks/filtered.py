"""The cost of endpoint filters at emit: fan-out to endpoints that each carry a filter.

Each endpoint's filter is a different expression of the example's shape in docs/filters.md, so
no evaluation is shared between endpoints, and every filter matches, so the emit stores as many
deliveries as the unfiltered fan-out it is compared with: the difference is the filters' cost.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from deliveries.models import Delivery
from subscriptions.models import Endpoint
from subscriptions.services import tenant_create
from webhooks import send_event

FILTERED_EVENTS = 20


@dataclass(frozen=True)
class FilteredFanOut:
    ms_per_event: float  # the median emit to the endpoints with filters
    unfiltered_ms_per_event: float  # the median emit of the same payloads to endpoints without
    deliveries_per_event: float

    def filter_us_per_endpoint(self, endpoints: int) -> float:
        return 1000 * (self.ms_per_event - self.unfiltered_ms_per_event) / endpoints


def endpoint_filter(n: int) -> str:
    """The filter of the `n`th endpoint: true for every event fan_out_filtered sends."""
    return f'data.amount > {n} && data.currency == "EUR"'


def fan_out_filtered(
    *, event_type: str, endpoints: int, events: int = FILTERED_EVENTS
) -> FilteredFanOut:
    """send_event to one tenant's `endpoints` subscribed endpoints, each with its own filter, and
    the same payloads to another tenant's as many endpoints without filters (never delivered:
    workers are off). The two alternate, so both meet the machine as it is; a first round warms
    both up and is not counted."""
    tenants = []
    for kind, filtered in (("filtered", True), ("unfiltered", False)):
        tenant = tenant_create(slug=f"fan-out-{kind}", name=f"Fan-out, {kind}")
        Endpoint.objects.bulk_create(
            Endpoint(tenant=tenant, url=f"https://fan-out.invalid/{n}",
                     filter=endpoint_filter(n) if filtered else "")
            for n in range(endpoints)
        )  # fmt: skip
        tenants.append(tenant)
    timings: dict[int, list[float]] = {tenant.id: [] for tenant in tenants}
    for n in range(events + 1):
        payload = {"n": n, "amount": endpoints + n, "currency": "EUR"}
        for tenant in tenants if n % 2 else reversed(tenants):
            started = time.perf_counter()
            send_event(tenant, event_type, payload)
            if n:
                timings[tenant.id].append(1000 * (time.perf_counter() - started))
    stored = Delivery.objects.filter(endpoint__tenant=tenants[0]).count()
    return FilteredFanOut(
        statistics.median(timings[tenants[0].id]),
        statistics.median(timings[tenants[1].id]),
        stored / (events + 1),
    )
