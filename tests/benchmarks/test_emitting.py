"""The benchmark's emitters, on their own (no workers, no receiver)."""

from __future__ import annotations

import pytest

from benchmarks.emitting import EVENT_TYPE, emit_batches
from deliveries.models import Delivery
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks.models import Event

pytestmark = pytest.mark.django_db


def test_emit_batches_sends_every_event_once_in_calls_of_100():
    EventTypeFactory(name=EVENT_TYPE)
    tenant = TenantFactory()
    EndpointFactory(tenant=tenant)

    seconds = emit_batches(tenant, 250)

    assert seconds > 0
    events = list(Event.objects.order_by("id"))
    assert [event.payload["n"] for event in events] == list(range(250))
    # One sent_at per call: three calls of 100, 100 and 50.
    assert len({event.payload["sent_at"] for event in events}) == 3
    assert Delivery.objects.count() == 250
