"""Endpoint `metadata` (the host's own data) and `channels` through the endpoints API, and
`channels` on events emitted through the API."""

from __future__ import annotations

import pytest

from subscriptions.models import Endpoint
from tests.api.conftest import assert_error_body, db_state
from tests.factories import EndpointFactory
from webhooks.models import Event

pytestmark = pytest.mark.django_db

URL = "http://127.0.0.1:9/hook"


def test_an_endpoint_keeps_its_metadata_and_channels(api, tenant_a):
    created = api.post(
        "/api/v1/endpoints/",
        {"url": URL, "metadata": {"customer": "cus_42", "ids": [1, 2]}, "channels": ["eu", "eu"]},
        format="json",
    )

    assert created.status_code == 201, created.content
    assert created.json()["metadata"] == {"customer": "cus_42", "ids": [1, 2]}
    assert created.json()["channels"] == ["eu"]
    endpoint_id = created.json()["id"]
    changed = api.patch(
        f"/api/v1/endpoints/{endpoint_id}/",
        {"metadata": {"customer": "cus_43"}, "channels": ["us", "project:7"]},
        format="json",
    )
    assert changed.status_code == 200
    shown = api.get(f"/api/v1/endpoints/{endpoint_id}/").json()
    assert (shown["metadata"], shown["channels"]) == ({"customer": "cus_43"}, ["us", "project:7"])
    stored = Endpoint.objects.get(id=endpoint_id)
    assert (stored.metadata, stored.channels) == ({"customer": "cus_43"}, ["us", "project:7"])


def test_an_endpoint_made_without_them_has_empty_ones(api, tenant_a):
    created = api.post("/api/v1/endpoints/", {"url": URL}, format="json").json()

    assert (created["metadata"], created["channels"]) == ({}, [])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("metadata", ["a"], "JSON object"),
        ("metadata", "cus_42", "JSON object"),
        ("metadata", None, "null"),
        ("metadata", {"k": "x" * 4100}, "limit is 4096"),
        ("metadata", {"k\x00": "v"}, "NUL"),
        ("metadata", {"k": "v\x00"}, "NUL"),
        ("channels", ["a b"], "channel"),
        ("channels", [""], ""),
        ("channels", ["x" * 129], ""),
        ("channels", [f"c{n}" for n in range(11)], ""),
        ("channels", "eu", ""),
        ("channels", [7], "string"),
        ("channels", ["eu\n"], "channel"),
        ("channels", None, "null"),
    ],
)
def test_bad_metadata_or_channels_are_a_400_that_changes_nothing(
    api, endpoint_a, field, value, message
):
    before = db_state()
    created = api.post("/api/v1/endpoints/", {"url": URL, field: value}, format="json")
    patched = api.patch(f"/api/v1/endpoints/{endpoint_a.id}/", {field: value}, format="json")

    for response in (created, patched):
        assert response.status_code == 400, response.content
        errors = assert_error_body(response, "invalid")["fields"][field]
        assert message in str(errors)
    assert db_state() == before


def test_another_tenants_endpoint_cannot_be_given_metadata(api, endpoint_b):
    response = api.patch(
        f"/api/v1/endpoints/{endpoint_b.id}/", {"metadata": {"mine": True}}, format="json"
    )

    assert response.status_code == 404
    endpoint_b.refresh_from_db()
    assert endpoint_b.metadata == {}


def test_an_event_posted_with_channels_reaches_the_endpoints_that_share_one(
    api, tenant_a, order_paid
):
    EndpointFactory(tenant=tenant_a, url="http://127.0.0.1:9/eu", channels=["eu"])
    EndpointFactory(tenant=tenant_a, url="http://127.0.0.1:9/us", channels=["us"])
    body = {"event_type": "order.paid", "payload": {"order_id": "o-1"}, "channels": ["eu"]}

    response = api.post("/api/v1/events/", body, format="json")

    assert response.status_code == 202
    assert (response.json()["deliveries"], response.json()["channels"]) == (1, ["eu"])
    event_id = response.json()["id"]
    assert api.get(f"/api/v1/events/{event_id}/").json()["channels"] == ["eu"]


def test_a_repeated_idempotency_key_with_other_channels_is_a_409(api, tenant_a, order_paid):
    body = {"event_type": "order.paid", "payload": {"order_id": "o-1"}, "idempotency_key": "k"}
    first = api.post("/api/v1/events/", {**body, "channels": ["eu", "us"]}, format="json")
    same = api.post("/api/v1/events/", {**body, "channels": ["us", "eu"]}, format="json")
    other = api.post("/api/v1/events/", {**body, "channels": ["eu"]}, format="json")

    assert (first.status_code, same.status_code, other.status_code) == (202, 202, 409)
    assert same["Idempotent-Replayed"] == "true"
    assert Event.objects.count() == 1


@pytest.mark.parametrize("channels", [["a b"], "eu", [f"c{n}" for n in range(11)], [None]])
def test_bad_event_channels_are_a_400_that_stores_nothing(api, tenant_a, order_paid, channels):
    before = db_state()
    single = api.post(
        "/api/v1/events/",
        {"event_type": "order.paid", "payload": {"order_id": "o-1"}, "channels": channels},
        format="json",
    )
    batch = api.post(
        "/api/v1/events/batch/",
        {
            "events": [
                {"event_type": "order.paid", "payload": {"order_id": "o"}, "channels": channels}
            ]
        },
        format="json",
    )

    assert single.status_code == 400
    assert "channels" in assert_error_body(single, "invalid")["fields"]
    assert batch.status_code == 400
    assert "channels" in assert_error_body(batch, "invalid")["fields"]["events"]["0"]
    assert db_state() == before


def test_a_batch_item_carries_its_channels(api, tenant_a, order_paid):
    EndpointFactory(tenant=tenant_a, url="http://127.0.0.1:9/eu", channels=["eu"])
    events = [
        {"event_type": "order.paid", "payload": {"order_id": "o-1"}, "channels": ["eu"]},
        {"event_type": "order.paid", "payload": {"order_id": "o-2"}, "channels": ["us"]},
    ]

    response = api.post("/api/v1/events/batch/", {"events": events}, format="json")

    assert [result["deliveries"] for result in response.json()["results"]] == [1, 0]
