"""Endpoint filters through the API: set, changed, cleared, refused with their position."""

from __future__ import annotations

import json

import pytest

from deliveries.models import Delivery
from subscriptions.models import Endpoint
from tests.api.conftest import assert_error_body, db_state
from tests.factories import EndpointFactory

pytestmark = pytest.mark.django_db

BIG_EUR = 'data.amount > 10000 && data.currency == "EUR"'


def _create(api, **fields):
    return api.post(
        "/api/v1/endpoints/", {"url": "http://127.0.0.1:9/hook", **fields}, format="json"
    )


def _emit(api, payload: dict) -> list[int]:
    response = api.post(
        "/api/v1/events/", {"event_type": "order.paid", "payload": payload}, format="json"
    )
    assert response.status_code == 202, response.content
    event_id = response.json()["id"]
    return list(
        Delivery.objects.filter(event__public_id=event_id).values_list("endpoint_id", flat=True)
    )


def test_an_endpoint_created_with_a_filter_gets_only_the_events_it_matches(api, order_paid):
    response = _create(api, filter=BIG_EUR)

    assert response.status_code == 201, response.content
    endpoint_id = response.json()["id"]
    assert response.json()["filter"] == BIG_EUR
    assert Endpoint.objects.get(id=endpoint_id).filter == BIG_EUR
    assert api.get(f"/api/v1/endpoints/{endpoint_id}/").json()["filter"] == BIG_EUR
    assert _emit(api, {"order_id": "o-1", "amount": 12000, "currency": "EUR"}) == [endpoint_id]
    assert _emit(api, {"order_id": "o-2", "amount": 12000, "currency": "USD"}) == []


def test_an_endpoint_without_a_filter_says_so(api, endpoint_a):
    assert api.get(f"/api/v1/endpoints/{endpoint_a.id}/").json()["filter"] == ""


def test_a_filter_is_changed_and_cleared_with_patch_and_put(api, endpoint_a, order_paid):
    url = f"/api/v1/endpoints/{endpoint_a.id}/"

    changed = api.patch(url, {"filter": "data.amount > 100"}, format="json")
    assert changed.status_code == 200, changed.content
    assert _emit(api, {"order_id": "o-1", "amount": 50}) == []

    replaced = api.put(url, {"url": endpoint_a.url, "filter": "data.amount > 10"}, format="json")
    assert replaced.status_code == 200, replaced.content
    assert _emit(api, {"order_id": "o-2", "amount": 50}) == [endpoint_a.id]

    cleared = api.patch(url, {"filter": ""}, format="json")
    assert cleared.status_code == 200
    assert cleared.json()["filter"] == ""
    endpoint_a.refresh_from_db()
    assert endpoint_a.filter == ""


def test_spaces_around_a_filter_are_dropped(api, endpoint_a):
    response = api.patch(
        f"/api/v1/endpoints/{endpoint_a.id}/", {"filter": "  type == 'a'\n"}, format="json"
    )

    assert response.json()["filter"] == "type == 'a'"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("data.amount >", "filter: line 1, column 14: unexpected end"),
        ('data.amount > 1 &&\n  (data.currency == "EUR"', "filter: line 2, column 26: missing ')'"),
        ("order.amount > 1", "filter: line 1, column 1: unknown variable 'order'"),
        ("data.lines.map(i, i.qty).size() > 0", "filter: line 1, column 12: map() is not"),
    ],
)
def test_a_bad_filter_is_a_400_naming_the_field_and_the_position(
    api, endpoint_a, expression, message
):
    before = db_state()

    created = _create(api, filter=expression)
    patched = api.patch(
        f"/api/v1/endpoints/{endpoint_a.id}/", {"filter": expression}, format="json"
    )

    for response in (created, patched):
        assert response.status_code == 400, response.content
        body = assert_error_body(response, "invalid")
        assert list(body["fields"]) == ["filter"]
        assert body["detail"].startswith(message), body["detail"]
    assert db_state() == before


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("data.x == '\x00'", "Null characters are not allowed."),
        ("data.amount > 1 && " * 6000 + "true", "no more than 2000 characters"),
        (12, "Must be a string"),
        (["data.amount > 1"], "Must be a string"),
        ({"cel": "true"}, "Must be a string"),
        (None, "This field may not be null."),
        (True, "Must be a string"),
    ],
)
def test_hostile_filters_are_a_400_and_change_nothing(api, endpoint_a, value, message):
    before = db_state()

    created = _create(api, filter=value)
    patched = api.patch(f"/api/v1/endpoints/{endpoint_a.id}/", {"filter": value}, format="json")

    for response in (created, patched):
        assert response.status_code == 400, response.content
        body = assert_error_body(response, "invalid")
        assert list(body["fields"]) == ["filter"]
        assert message in body["detail"], body["detail"]
    assert db_state() == before


def test_a_lone_surrogate_in_a_filter_is_a_400(api, endpoint_a):
    before = db_state()
    body = '{"filter": "data.note == \\"\\ud800\\""}'

    response = api.patch(
        f"/api/v1/endpoints/{endpoint_a.id}/", body, content_type="application/json"
    )

    assert response.status_code == 400
    assert "unpaired surrogate" in assert_error_body(response)["detail"]
    assert db_state() == before


def test_another_tenants_endpoint_filter_is_a_404(api, endpoint_b):
    response = api.patch(f"/api/v1/endpoints/{endpoint_b.id}/", {"filter": "true"}, format="json")

    assert response.status_code == 404
    endpoint_b.refresh_from_db()
    assert endpoint_b.filter == ""


def test_a_filter_is_listed_with_its_endpoint(api, tenant_a):
    EndpointFactory(tenant=tenant_a, filter=BIG_EUR)

    [listed] = api.get("/api/v1/endpoints/").json()["results"]

    assert listed["filter"] == BIG_EUR


def test_openapi_schema_documents_the_filter(anon):
    schema = json.loads(anon.get("/api/schema/", {"format": "json"}).content)

    for name in ("Endpoint", "EndpointCreateRequest", "PatchedEndpointRequest"):
        described = schema["components"]["schemas"][name]["properties"]["filter"]
        assert described["type"] == "string"
        assert described["maxLength"] == 2000
        assert "CEL expression over type, data, tenant and timestamp" in described["description"]
        assert "line and column" in described["description"]
