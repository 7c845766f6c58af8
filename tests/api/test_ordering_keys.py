"""Ordering keys through the API: emitted with an event, read back on its deliveries."""

from __future__ import annotations

import pytest

from deliveries.models import Delivery
from tests.api.conftest import assert_error_body, db_state
from tests.factories import EndpointFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoint(tenant_a, order_paid):
    return EndpointFactory(tenant=tenant_a, url="http://127.0.0.1:9/hook")


def _emit(client, key, order_id="o-1", **extra):
    body = {"event_type": "order.paid", "payload": {"order_id": order_id}, **extra}
    if key is not None:
        body["ordering_key"] = key
    return client.post("/api/v1/events/", body, format="json")


def test_an_event_with_a_key_waits_behind_the_earlier_one_of_its_key(api, endpoint):
    first = _emit(api, "ord_1001")
    second = _emit(api, "ord_1001", order_id="o-2")
    assert first.status_code == second.status_code == 202
    assert first.json()["ordering_key"] == "ord_1001"
    head = Delivery.objects.get(event__public_id=first.json()["id"])
    waiting = Delivery.objects.get(event__public_id=second.json()["id"])

    detail = api.get(f"/api/v1/deliveries/{waiting.id}/").json()
    assert detail["ordering_key"] == "ord_1001"
    assert detail["waiting_on_key"] is True
    assert detail["status"] == "pending"
    assert detail["blocked_by"] == head.id
    head_detail = api.get(f"/api/v1/deliveries/{head.id}/").json()
    assert (head_detail["waiting_on_key"], head_detail["blocked_by"]) == (False, None)

    event = api.get(f"/api/v1/events/{second.json()['id']}/").json()
    assert event["ordering_key"] == "ord_1001"
    assert event["deliveries"][0]["waiting_on_key"] is True


def test_deliveries_can_be_listed_by_ordering_key(api, endpoint):
    _emit(api, "ord_1")
    _emit(api, "ord_2")
    _emit(api, None)
    listed = api.get("/api/v1/deliveries/", {"ordering_key": "ord_2"}).json()["results"]
    assert [d["ordering_key"] for d in listed] == ["ord_2"]


def test_an_event_without_a_key_is_unordered(api, endpoint):
    response = _emit(api, "")
    assert response.status_code == 202
    assert response.json()["ordering_key"] == ""
    assert not Delivery.objects.get().waiting_on_key


@pytest.mark.parametrize(
    "key", ["x" * 129, " ord_1", "ord 1", "ord\u00e9", "tab\t", "nul\u0000", 42, ["ord_1"], {}]
)
def test_a_bad_ordering_key_is_a_400_naming_the_field_and_stores_nothing(api, endpoint, key):
    before = db_state()
    response = _emit(api, key)
    assert response.status_code == 400, response.content
    body = assert_error_body(response, "invalid")
    assert "ordering_key" in body["fields"]
    assert db_state() == before


def test_repeating_an_idempotency_key_with_another_ordering_key_is_a_conflict(api, endpoint):
    assert _emit(api, "ord_1", idempotency_key="once").status_code == 202
    again = _emit(api, "ord_1", idempotency_key="once")
    assert again.status_code == 202
    assert again["Idempotent-Replayed"] == "true"
    other = _emit(api, "ord_2", idempotency_key="once")
    assert other.status_code == 409
    assert Delivery.objects.count() == 1


def test_another_tenants_key_does_not_hold_this_tenants_events(api, other_api, endpoint, tenant_b):
    EndpointFactory(tenant=tenant_b, url="http://127.0.0.1:9/b")
    _emit(other_api, "ord_1")
    _emit(api, "ord_1")
    assert not Delivery.objects.filter(waiting_on_key=True).exists()
    theirs = Delivery.objects.get(endpoint__tenant=tenant_b)
    assert api.get(f"/api/v1/deliveries/{theirs.id}/").status_code == 404
