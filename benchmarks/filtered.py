"""The cost of endpoint filters at emit: fan-out to endpoints that each carry a filter.

Each endpoint's filter is a different expression of the issue's example's shape, so no
evaluation is shared between endpoints, and every filter matches, so the emit stores as many
deliveries as the unfiltered fan-out it is compared with: the difference is the filters' cost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from deliveries.models import Delivery
from subscriptions.models import Endpoint
from subscriptions.services import tenant_create
from webhooks import send_event

FILTERED_EVENTS = 10


@dataclass(frozen=True)
class FilteredFanOut:
    ms_per_event: float
    deliveries_per_event: float


def endpoint_filter(n: int) -> str:
    """The filter of the `n`th endpoint: true for every event fan_out_filtered sends."""
    return f'data.amount > {n} && data.currency == "EUR"'


def fan_out_filtered(
    *, event_type: str, endpoints: int, events: int = FILTERED_EVENTS
) -> FilteredFanOut:
    """send_event to one tenant's `endpoints` subscribed endpoints, each with its own filter
    (never delivered: workers are off), timed per event."""
    tenant = tenant_create(slug="fan-out-filtered", name="Fan-out with filters")
    Endpoint.objects.bulk_create(
        Endpoint(tenant=tenant, url=f"https://fan-out.invalid/{n}", filter=endpoint_filter(n))
        for n in range(endpoints)
    )
    started = time.perf_counter()
    for n in range(events):
        send_event(tenant, event_type, {"n": n, "amount": endpoints + n, "currency": "EUR"})
    elapsed = time.perf_counter() - started
    stored = Delivery.objects.filter(endpoint__tenant=tenant).count()
    return FilteredFanOut(1000 * elapsed / events, stored / events)
