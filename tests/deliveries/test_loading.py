"""The claim's loader builds exactly what the ORM would.

PostgreSQL loads with one hand-written query, other databases with `select_related`: these tests
run on both (deliveries.loading)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import Model
from django.utils import timezone

from deliveries.loading import deliveries_load
from deliveries.models import Delivery
from subscriptions.services import endpoint_rotate_secret
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event

pytestmark = pytest.mark.django_db


def values(instance: Model) -> dict:
    return {
        field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields
    }


def loaded_by_the_orm(ids: list[int]) -> list[Delivery]:
    loaded = Delivery.objects.select_related("event__event_type", "endpoint").in_bulk(ids)
    return [loaded[delivery_id] for delivery_id in ids]


def test_loaded_deliveries_match_the_orm_field_for_field():
    EventTypeFactory(name="order.paid")
    EventTypeFactory(name="order.refunded")
    tenant = TenantFactory()
    first = EndpointFactory(tenant=tenant, headers={"X-Team": "billing"}, rate_limit=5)
    endpoint_rotate_secret(endpoint=first)  # two secrets, both encrypted at rest
    EndpointFactory(tenant=tenant)
    send_event(tenant, "order.paid", {"id": "ord_1", "note": "naïve ☕", "lines": [{"n": 1}]})
    send_event(tenant, "order.refunded", {"id": "ord_1", "amount": None})
    ids = list(Delivery.objects.order_by("id").values_list("id", flat=True))
    Delivery.objects.filter(id=ids[0]).update(next_attempt_at=timezone.now() + timedelta(hours=1))
    # The order the claim chose (deliveries.fair shares a batch out), not the table's
    ids = [ids[2], ids[0], ids[3], ids[1]]

    loaded, expected = deliveries_load(ids), loaded_by_the_orm(ids)

    assert [d.id for d in loaded] == ids
    for got, want in zip(loaded, expected, strict=True):
        assert values(got) == values(want)
        assert values(got.event) == values(want.event)
        assert values(got.event.event_type) == values(want.event.event_type)
        assert values(got.endpoint) == values(want.endpoint)
        assert got.endpoint.signing_secrets() == want.endpoint.signing_secrets()
    by_endpoint = {}
    for delivery in loaded:
        by_endpoint.setdefault(delivery.endpoint_id, set()).add(id(delivery.endpoint))
    assert all(len(instances) == 1 for instances in by_endpoint.values())  # built once each


def test_loading_nothing_is_no_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert deliveries_load([]) == []
