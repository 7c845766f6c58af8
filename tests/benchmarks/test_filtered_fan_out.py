"""The filtered fan-out figure on a small scale (its speed is not asserted)."""

from __future__ import annotations

import pytest

from benchmarks.emitting import EVENT_TYPE
from benchmarks.filtered import endpoint_filter, fan_out_filtered
from deliveries.models import Delivery
from subscriptions.models import Endpoint, Tenant
from tests.factories import EventTypeFactory
from webhooks import send_event

pytestmark = pytest.mark.django_db


def test_every_endpoint_has_its_own_filter_and_every_filter_matches():
    EventTypeFactory(name=EVENT_TYPE)

    measured = fan_out_filtered(event_type=EVENT_TYPE, endpoints=25, events=3)

    assert measured.ms_per_event > 0
    assert measured.unfiltered_ms_per_event > 0
    assert measured.deliveries_per_event == 25  # as many as without filters
    filtered = Endpoint.objects.filter(tenant__slug="fan-out-filtered")
    assert set(filtered.values_list("filter", flat=True)) == {endpoint_filter(n) for n in range(25)}
    assert not Endpoint.objects.filter(tenant__slug="fan-out-unfiltered").exclude(filter="")
    # Both tenants got the warm-up event and the 3 measured ones, each to all 25 endpoints.
    assert Delivery.objects.filter(endpoint__tenant__slug="fan-out-filtered").count() == 100
    assert Delivery.objects.filter(endpoint__tenant__slug="fan-out-unfiltered").count() == 100


def test_the_filters_decide_the_deliveries():
    # An event below some thresholds goes only to the endpoints whose filter it passes: the
    # figure measures filters that are evaluated, not skipped.
    EventTypeFactory(name=EVENT_TYPE)
    fan_out_filtered(event_type=EVENT_TYPE, endpoints=10, events=1)
    tenant = Tenant.objects.get(slug="fan-out-filtered")

    event = send_event(tenant, EVENT_TYPE, {"amount": 4, "currency": "EUR"})

    assert Delivery.objects.filter(event=event).count() == 4
