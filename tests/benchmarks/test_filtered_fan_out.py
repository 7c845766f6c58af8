"""The filtered fan-out figure on a small scale (its speed is not asserted)."""

from __future__ import annotations

import pytest

from benchmarks.emitting import EVENT_TYPE
from benchmarks.filtered import endpoint_filter, fan_out_filtered
from deliveries.models import Delivery
from subscriptions.models import Endpoint
from tests.factories import EventTypeFactory
from webhooks import send_event

pytestmark = pytest.mark.django_db


def test_every_endpoint_has_its_own_filter_and_every_filter_matches():
    EventTypeFactory(name=EVENT_TYPE)

    measured = fan_out_filtered(event_type=EVENT_TYPE, endpoints=25, events=3)

    assert measured.ms_per_event > 0
    assert measured.deliveries_per_event == 25  # as many as without filters
    filters = set(Endpoint.objects.values_list("filter", flat=True))
    assert filters == {endpoint_filter(n) for n in range(25)}
    assert Delivery.objects.count() == 75


def test_the_filters_decide_the_deliveries():
    # An event below some thresholds goes only to the endpoints whose filter it passes: the
    # figure measures filters that are evaluated, not skipped.
    EventTypeFactory(name=EVENT_TYPE)
    fan_out_filtered(event_type=EVENT_TYPE, endpoints=10, events=1)
    tenant = Endpoint.objects.first().tenant

    event = send_event(tenant, EVENT_TYPE, {"amount": 4, "currency": "EUR"})

    assert Delivery.objects.filter(event=event).count() == 4
