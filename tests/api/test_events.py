"""Emitting events through the API: validation, size limits, idempotency, reading them back."""

from __future__ import annotations

import json

import pytest

from deliveries.models import Delivery
from tests.api.conftest import assert_error_body, db_state
from tests.factories import EndpointFactory, EventTypeFactory
from webhooks.models import Event

pytestmark = pytest.mark.django_db

PAID = {"event_type": "order.paid", "payload": {"order_id": "o-1", "amount": 100}}


@pytest.fixture
def subscribed(tenant_a, order_paid):
    """Tenant A: one endpoint for every type, one for order.paid, one for another type."""
    EventTypeFactory(name="user.created")
    return [
        EndpointFactory(tenant=tenant_a, url="http://127.0.0.1:9/all"),
        EndpointFactory(tenant=tenant_a, url="http://127.0.0.1:9/paid", event_types=[order_paid]),
        EndpointFactory(
            tenant=tenant_a,
            url="http://127.0.0.1:9/users",
            event_types=[EventTypeFactory(name="user.created")],
        ),
    ]


def _emit(client, body=PAID, **headers):
    return client.post("/api/v1/events/", body, format="json", **headers)


def test_emitting_an_event_stores_it_with_one_delivery_per_subscribed_endpoint(
    api, tenant_a, subscribed
):
    response = _emit(api)

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["id"].startswith("msg_")
    assert body["deliveries"] == 2
    event = Event.objects.get(public_id=body["id"])
    assert event.tenant == tenant_a
    assert event.payload == PAID["payload"]
    assert {d.endpoint for d in event.deliveries.all()} == set(subscribed[:2])
    assert "Idempotent-Replayed" not in response


def test_another_tenants_endpoints_get_nothing(api, other_api, subscribed, endpoint_b):
    response = _emit(other_api)

    assert response.json()["deliveries"] == 1
    assert list(Delivery.objects.values_list("endpoint_id", flat=True)) == [endpoint_b.id]


def test_a_repeated_idempotency_key_returns_the_first_event_and_stores_nothing(api, subscribed):
    first = _emit(api, {**PAID, "idempotency_key": "order-o-1"})
    before = db_state()

    again = _emit(api, {**PAID, "idempotency_key": "order-o-1"})

    assert again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["deliveries"] == 2
    assert again["Idempotent-Replayed"] == "true"
    assert db_state() == before


def test_the_idempotency_key_can_be_sent_as_a_header(api, subscribed):
    first = _emit(api, HTTP_IDEMPOTENCY_KEY="order-o-1")
    before = db_state()

    again = _emit(api, HTTP_IDEMPOTENCY_KEY="order-o-1")

    assert first.status_code == again.status_code == 202
    assert Event.objects.get(public_id=first.json()["id"]).idempotency_key == "order-o-1"
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert db_state() == before


def test_header_and_body_idempotency_keys_are_the_same_key(api, subscribed):
    first = _emit(api, HTTP_IDEMPOTENCY_KEY="order-o-1")

    again = _emit(api, {**PAID, "idempotency_key": "order-o-1"})

    assert again.json()["id"] == first.json()["id"]
    assert Event.objects.count() == 1


@pytest.mark.parametrize(
    "changed",
    [
        {"payload": {"order_id": "o-2"}},
        {"event_type": "user.created", "payload": PAID["payload"]},
    ],
)
def test_the_same_idempotency_key_for_a_different_event_is_409(api, subscribed, changed):
    _emit(api, {**PAID, "idempotency_key": "order-o-1"})
    before = db_state()

    response = _emit(api, {**PAID, **changed, "idempotency_key": "order-o-1"})

    assert response.status_code == 409
    assert_error_body(response, "conflict")
    assert db_state() == before


def test_idempotency_keys_are_per_tenant(api, other_api, subscribed, endpoint_b):
    mine = _emit(api, HTTP_IDEMPOTENCY_KEY="shared-key")

    theirs = _emit(
        other_api, {**PAID, "payload": {"order_id": "b"}}, HTTP_IDEMPOTENCY_KEY="shared-key"
    )

    assert theirs.status_code == 202
    assert theirs.json()["id"] != mine.json()["id"]
    assert theirs.json()["payload"] == {"order_id": "b"}
    assert "Idempotent-Replayed" not in theirs


def test_an_over_long_idempotency_key_header_is_400(api, subscribed):
    response = _emit(api, HTTP_IDEMPOTENCY_KEY="k" * 300)

    assert response.status_code == 400
    assert not Event.objects.exists()


def test_an_over_long_idempotency_key_in_the_body_is_400(api, subscribed):
    response = _emit(api, {**PAID, "idempotency_key": "k" * 300})

    assert response.status_code == 400
    assert "idempotency_key" in assert_error_body(response, "invalid")["fields"]
    assert not Event.objects.exists()


# --- Refused input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", ['{"event_type": "order.paid", "payload": {', "not json", "{'single': 'quotes'}", ""]
)
def test_malformed_json_is_400_with_a_clear_detail(api, subscribed, raw):
    response = api.post("/api/v1/events/", raw, content_type="application/json")

    assert response.status_code == 400
    body = assert_error_body(response)
    assert body["code"] in ("parse_error", "invalid")
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"payload": {"order_id": "1"}}, "event_type"),
        ({"event_type": "order.paid"}, "payload"),
        ({"event_type": "", "payload": {}}, "event_type"),
        ({"event_type": "order.paid", "payload": ["order_id"]}, "payload"),
        ({"event_type": "order.paid", "payload": "order"}, "payload"),
        ({"event_type": "order.paid", "payload": None}, "payload"),
        ({"event_type": "order.paid", "payload": 7}, "payload"),
        ({"event_type": ["order.paid"], "payload": {}}, "event_type"),
    ],
)
def test_missing_or_mistyped_fields_are_400(api, subscribed, body, field):
    response = api.post("/api/v1/events/", body, format="json")

    assert response.status_code == 400
    assert field in assert_error_body(response, "invalid")["fields"]
    assert not Event.objects.exists()


def test_an_unknown_event_type_is_400(api, subscribed):
    response = _emit(api, {"event_type": "order.refunded", "payload": {}})

    assert response.status_code == 400
    assert "order.refunded" in assert_error_body(response, "invalid")["detail"]
    assert not Event.objects.exists()


def test_an_unknown_event_type_is_reported_against_the_event_type_field(api, subscribed):
    response = _emit(api, {"event_type": "order.refunded", "payload": {}})

    body = assert_error_body(response, "invalid")
    assert list(body["fields"]) == ["event_type"]
    assert body["detail"].startswith("event_type: ")
    assert "manage.py" not in body["detail"]


def test_an_archived_event_type_is_400(api, subscribed):
    EventTypeFactory(name="order.old", archived=True)

    response = _emit(api, {"event_type": "order.old", "payload": {}})

    assert response.status_code == 400
    body = assert_error_body(response, "invalid")
    assert "archived" in body["detail"]
    assert list(body["fields"]) == ["event_type"]
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"amount": 1}, "order_id"),
        ({"order_id": 1}, "order_id"),
        ({"order_id": "o-1", "amount": "ten"}, "amount"),
    ],
)
def test_a_payload_failing_the_type_schema_is_400_and_says_where(api, subscribed, payload, where):
    response = _emit(api, {"event_type": "order.paid", "payload": payload})

    assert response.status_code == 400
    detail = assert_error_body(response, "invalid")["detail"]
    assert "schema" in detail
    assert where in detail
    assert not Event.objects.exists()


def test_a_payload_over_the_size_limit_is_413(api, subscribed, settings):
    settings.WEBHOOKS_MAX_PAYLOAD_BYTES = 1000
    payload = {"order_id": "x" * (2000 - len('{"order_id":""}'))}
    assert len(json.dumps(payload, separators=(",", ":"))) == 2000

    response = _emit(api, {"event_type": "order.paid", "payload": payload})

    assert response.status_code == 413
    assert_error_body(response, "payload_too_large")
    assert not Event.objects.exists()


def test_a_request_body_far_over_the_size_limit_is_413(api, subscribed, settings):
    settings.WEBHOOKS_MAX_PAYLOAD_BYTES = 1000
    payload = {"order_id": "x" * 200_000}

    response = _emit(api, {"event_type": "order.paid", "payload": payload})

    assert response.status_code == 413
    assert_error_body(response, "payload_too_large")
    assert not Event.objects.exists()


def test_a_payload_under_the_size_limit_is_accepted(api, subscribed, settings):
    settings.WEBHOOKS_MAX_PAYLOAD_BYTES = 1000
    payload = {"order_id": "x" * 900}

    assert _emit(api, {"event_type": "order.paid", "payload": payload}).status_code == 202


@pytest.mark.parametrize(
    "payload", [{"order_id": "o\u00001"}, {"order_id": "o-1", "k\u0000": 1}], ids=["value", "key"]
)
def test_a_payload_with_a_nul_character_is_400_not_500(api, subscribed, payload):
    response = _emit(api, {"event_type": "order.paid", "payload": payload})

    assert response.status_code == 400


def test_a_payload_with_an_unpaired_surrogate_is_400_not_500(api, subscribed):
    raw = '{"event_type": "order.paid", "payload": {"order_id": "o\\ud800"}}'

    response = api.post("/api/v1/events/", raw, content_type="application/json")

    assert response.status_code == 400
    assert "unpaired surrogate" in response.json()["detail"]


def test_a_deeply_nested_body_is_400_not_500(api, subscribed):
    raw = '{"event_type": "order.paid", "payload": {"order_id": "o", "deep": ' + "[" * 5000

    response = api.post("/api/v1/events/", raw, content_type="application/json")

    assert response.status_code == 400


def test_an_event_of_a_type_with_a_dangling_schema_ref_is_not_a_500(api, tenant_a):
    EventTypeFactory(name="broken.schema", schema={"$ref": "#/definitions/missing"})

    response = _emit(api, {"event_type": "broken.schema", "payload": {}})

    assert 400 <= response.status_code < 500
    assert_error_body(response)


# --- Reading events -------------------------------------------------------------------------------


def test_an_event_is_returned_with_its_deliveries(api, subscribed):
    emitted = _emit(api).json()

    response = api.get(f"/api/v1/events/{emitted['id']}/")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == emitted["id"]
    assert body["event_type"] == "order.paid"
    assert body["payload"] == PAID["payload"]
    assert sorted(d["endpoint_id"] for d in body["deliveries"]) == sorted(
        e.id for e in subscribed[:2]
    )
    assert {d["status"] for d in body["deliveries"]} == {"pending"}
    assert {d["event_id"] for d in body["deliveries"]} == {emitted["id"]}


def test_an_unknown_event_is_404(api, subscribed):
    response = api.get("/api/v1/events/msg_00000000000000000000000000/")

    assert response.status_code == 404
    assert_error_body(response, "not_found")


def test_another_tenants_event_is_404(api, other_api, subscribed):
    emitted = _emit(api).json()

    response = other_api.get(f"/api/v1/events/{emitted['id']}/")

    assert response.status_code == 404
    assert_error_body(response, "not_found")


def test_emitting_needs_a_key(anon, subscribed):
    assert _emit(anon).status_code == 401
    assert not Event.objects.exists()


# --- The payload as the host wrote it -------------------------------------------------------------

AS_WRITTEN = '{"order_id": "o-1", "b": 1, "a": [1e308, 6.02214076e23, -0.0, 1.10]}'
AS_WRITTEN_COMPACT = b'{"order_id":"o-1","b":1,"a":[1e308,6.02214076e23,-0.0,1.10]}'


def _emit_raw(client, payload_text: str, **headers):
    raw = '{"event_type": "order.paid",\n "payload": ' + payload_text + "}"
    return client.post("/api/v1/events/", raw, content_type="application/json", **headers)


def test_the_payload_reads_back_with_the_hosts_key_order_and_number_spellings(api, subscribed):
    emitted = _emit_raw(api, AS_WRITTEN)

    response = api.get(f"/api/v1/events/{emitted.json()['id']}/")

    assert emitted.status_code == 202, emitted.content
    assert b'"payload":' + AS_WRITTEN_COMPACT in emitted.content
    assert b'"payload":' + AS_WRITTEN_COMPACT in response.content
    assert response.json()["payload"]["a"][0] == 1e308


def test_a_delivery_reads_back_with_the_payload_as_the_host_wrote_it(api, subscribed):
    emitted = _emit_raw(api, AS_WRITTEN)
    delivery = Delivery.objects.filter(event__public_id=emitted.json()["id"]).first()

    response = api.get(f"/api/v1/deliveries/{delivery.id}/")

    assert response.status_code == 200
    assert b'"payload":' + AS_WRITTEN_COMPACT in response.content


def test_a_repeated_key_with_the_same_payload_written_differently_is_the_same_event(
    api, subscribed
):
    first = _emit_raw(api, AS_WRITTEN, HTTP_IDEMPOTENCY_KEY="order-o-1")
    before = db_state()

    again = _emit_raw(
        api,
        '{"a":[1E+308,602214076e15,0.0,1.1],"b":1.0,"order_id":"o-1"}',
        HTTP_IDEMPOTENCY_KEY="order-o-1",
    )

    assert again.status_code == 202, again.content
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert b'"payload":' + AS_WRITTEN_COMPACT in again.content
    assert db_state() == before


@pytest.mark.parametrize(
    "payload_text",
    ['{"order_id": "o-1", "amount": 1, "amount": 2}', '{"order_id": "o-1", "x": {"k": 1, "k": 2}}'],
    ids=["top", "nested"],
)
def test_a_payload_repeating_a_key_is_400(api, subscribed, payload_text):
    """Receivers' parsers disagree on which of two equal keys wins; the schema saw only one."""
    response = _emit_raw(api, payload_text)

    assert response.status_code == 400
    assert "appears twice" in assert_error_body(response, "parse_error")["detail"]
    assert not Event.objects.exists()


def test_the_size_limit_counts_the_payload_as_it_will_be_sent(api, subscribed, settings):
    settings.WEBHOOKS_MAX_PAYLOAD_BYTES = 1000
    # 1,200 bytes as written, 600 characters once parsed: receivers would get the 1,200.
    escaped = '{"order_id": "' + "\\u00e9" * 200 + '"}'

    response = _emit_raw(api, escaped)

    assert response.status_code == 413
    assert not Event.objects.exists()
