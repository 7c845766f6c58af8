"""POST /api/v1/events/batch/: many events in one request, with a result for each."""

from __future__ import annotations

import pytest

from deliveries.models import Delivery
from tests.api.conftest import assert_error_body, db_state
from tests.factories import EndpointFactory, EventTypeFactory
from webhooks.models import Event

pytestmark = pytest.mark.django_db

URL = "/api/v1/events/batch/"


@pytest.fixture
def subscribed(tenant_a, order_paid):
    EventTypeFactory(name="user.created")
    return [
        EndpointFactory(tenant=tenant_a, url="http://127.0.0.1:9/all"),
        EndpointFactory(tenant=tenant_a, url="http://127.0.0.1:9/paid", event_types=[order_paid]),
    ]


def paid(order_id: str = "o-1", **fields) -> dict:
    return {"event_type": "order.paid", "payload": {"order_id": order_id}, **fields}


def post(client, events, **body):
    return client.post(URL, {"events": events, **body}, format="json")


def test_a_batch_creates_its_events_in_order_and_answers_each_items_result(api, subscribed):
    response = post(api, [paid("o-1"), {"event_type": "user.created", "payload": {}}])

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["atomic"], body["created"], body["duplicates"], body["rejected"]) == (
        False, 2, 0, 0,
    )  # fmt: skip
    first, second = body["results"]
    assert (first["index"], first["status"], first["deliveries"]) == (0, "created", 2)
    assert (second["index"], second["status"], second["deliveries"]) == (1, "created", 1)
    assert first["code"] is first["field"] is first["detail"] is None
    events = list(Event.objects.order_by("id"))
    assert [event.public_id for event in events] == [first["id"], second["id"]]
    assert Delivery.objects.count() == 3


def test_mixed_valid_and_invalid_items_store_the_valid_ones(api, subscribed, settings):
    settings.WEBHOOKS_MAX_PAYLOAD_BYTES = 100
    events = [
        paid("o-1"),
        {"event_type": "order.refunded", "payload": {}},  # unknown
        {"event_type": "order.paid", "payload": {"amount": 1}},  # fails the type's schema
        paid("x" * 200),  # over the size limit
        paid("o\u00005"),  # NUL, which jsonb cannot store
        paid("o-6"),
    ]

    response = post(api, events)

    assert response.status_code == 200
    body = response.json()
    assert (body["created"], body["rejected"]) == (2, 4)
    assert [(r["status"], r["code"], r["field"]) for r in body["results"]] == [
        ("created", None, None),
        ("rejected", "unknown_event_type", "event_type"),
        ("rejected", "invalid_payload", "payload"),
        ("rejected", "payload_too_large", "payload"),
        ("rejected", "invalid_payload", "payload"),
        ("created", None, None),
    ]
    rejected = body["results"][1:5]
    assert all(r["id"] is None and r["deliveries"] is None for r in rejected)
    assert "order.refunded" in rejected[0]["detail"]
    assert "schema of 'order.paid' at (root)" in rejected[1]["detail"]
    assert "limit is 100 bytes" in rejected[2]["detail"]
    assert "NUL" in rejected[3]["detail"]
    stored = Event.objects.order_by("id").values_list("payload", flat=True)
    assert list(stored) == [{"order_id": "o-1"}, {"order_id": "o-6"}]


def test_an_idempotency_key_repeated_in_a_batch_or_across_requests_is_a_duplicate(api, subscribed):
    single = api.post("/api/v1/events/", paid("o-0"), format="json", HTTP_IDEMPOTENCY_KEY="k0")
    first = post(api, [paid("o-1", idempotency_key="k1"), paid("o-1", idempotency_key="k1")])
    before = db_state()

    again = post(api, [paid("o-0", idempotency_key="k0"), paid("o-1", idempotency_key="k1")])

    first_results = first.json()["results"]
    assert [r["status"] for r in first_results] == ["created", "duplicate"]
    assert first_results[1]["id"] == first_results[0]["id"]
    body = again.json()
    assert (body["created"], body["duplicates"]) == (0, 2)
    assert [r["id"] for r in body["results"]] == [single.json()["id"], first_results[0]["id"]]
    assert db_state() == before


def test_a_key_taken_by_another_event_rejects_that_item_alone(api, subscribed):
    post(api, [paid("o-1", idempotency_key="k1")])

    response = post(api, [paid("o-2", idempotency_key="k1"), paid("o-3")])

    results = response.json()["results"]
    assert [(r["status"], r["code"]) for r in results] == [
        ("rejected", "idempotency_conflict"), ("created", None),
    ]  # fmt: skip
    assert results[0]["field"] == "idempotency_key"


def test_an_atomic_batch_with_a_rejected_item_stores_nothing(api, subscribed):
    before = db_state()

    response = post(api, [paid("o-1"), {"event_type": "nope", "payload": {}}], atomic=True)

    assert response.status_code == 200
    body = response.json()
    assert (body["atomic"], body["created"], body["rejected"]) == (True, 0, 2)
    assert [r["code"] for r in body["results"]] == ["not_stored", "unknown_event_type"]
    assert body["results"][0]["detail"] == (
        "Not stored: the batch is atomic, and the item at index 1 was rejected."
    )
    assert db_state() == before


def test_an_atomic_batch_of_valid_items_is_stored(api, subscribed):
    response = post(api, [paid("o-1"), paid("o-2")], atomic=True)

    assert response.json()["created"] == 2
    assert Event.objects.count() == 2


def test_more_than_500_events_is_a_413_that_says_so_and_stores_nothing(api, subscribed):
    response = post(api, [paid(str(n)) for n in range(501)])

    assert response.status_code == 413
    body = assert_error_body(response, "too_many_events")
    assert body["detail"] == (
        "The batch holds 501 events; at most 500 are accepted at once: split it into several."
    )
    assert not Event.objects.exists()


def test_500_events_are_accepted(api, subscribed):
    response = post(api, [paid(str(n)) for n in range(500)])

    assert response.status_code == 200
    assert response.json()["created"] == 500
    assert Delivery.objects.count() == 1000


def test_a_body_over_the_batch_limit_is_a_413_before_it_is_read(api, subscribed, settings):
    settings.WEBHOOKS_BATCH_MAX_BYTES = 5000
    events = [paid("x" * 100) for _ in range(100)]

    response = post(api, events)

    assert response.status_code == 413
    detail = assert_error_body(response, "payload_too_large")["detail"]
    assert "a batch is limited to 5000 bytes (WEBHOOKS_BATCH_MAX_BYTES)" in detail
    assert not Event.objects.exists()


def test_the_batch_limit_is_its_own_above_the_single_events(api, subscribed, settings):
    settings.WEBHOOKS_MAX_PAYLOAD_BYTES = 1000
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    events = [paid("x" * 900) for _ in range(20)]  # 18 kB, each payload under its limit

    response = post(api, events)

    assert response.status_code == 200, response.content[:300]
    assert response.json()["created"] == 20


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        '{"events": [',
        '{"events": [{"event_type": "order.paid", "payload": {}},]}',
        '{"events": [], "events": []}',
        "",
    ],
)
def test_malformed_json_is_400(api, subscribed, raw):
    response = api.post(URL, raw, content_type="application/json")

    assert response.status_code == 400
    assert assert_error_body(response)["code"] in ("parse_error", "invalid")
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "events"),
        ({"events": {"event_type": "order.paid"}}, "events"),
        ({"events": "order.paid"}, "events"),
        ({"events": [paid()], "atomic": "yes"}, "atomic"),
        ({"events": [paid()], "atomic": 1}, "atomic"),
        ({"events": ["order.paid"]}, "events"),
        ({"events": [{"payload": {}}]}, "events"),
        ({"events": [{"event_type": "order.paid"}]}, "events"),
        ({"events": [{"event_type": 7, "payload": {}}]}, "events"),
        ({"events": [{"event_type": "order.paid", "payload": []}]}, "events"),
        ({"events": [paid(ordering_key="has space")]}, "events"),
        ({"events": [paid(idempotency_key="k" * 256)]}, "events"),
        ({"events": [paid(idempotency_key="k\u0000")]}, "events"),
    ],
)
def test_a_request_the_schema_forbids_is_a_400_naming_the_field_and_stores_nothing(
    api, subscribed, body, field
):
    response = api.post(URL, body, format="json")

    assert response.status_code == 400
    assert field in assert_error_body(response, "invalid")["fields"]
    assert not Event.objects.exists()


def test_a_400_names_the_item_at_fault(api, subscribed):
    response = post(api, [paid(), paid(ordering_key="has space")])

    body = assert_error_body(response, "invalid")
    assert body["fields"] == {
        "events": {"1": {"ordering_key": [body["fields"]["events"]["1"]["ordering_key"][0]]}}
    }
    assert "visible ASCII" in body["detail"]


def test_a_lone_surrogate_anywhere_is_a_400(api, subscribed):
    raw = '{"events": [{"event_type": "order.paid", "payload": {"order_id": "\\ud800"}}]}'

    response = api.post(URL, raw, content_type="application/json")

    assert response.status_code == 400
    assert "surrogate" in assert_error_body(response)["detail"]


def test_payloads_are_kept_as_written(api, subscribed):
    raw = (
        '{"events": [{"event_type": "order.paid", "payload": {"order_id": "o-1", "price": 1.10}},'
        ' {"event_type": "order.paid", "payload": {"order_id": "o-2",  "big": 1e308}}]}'
    )

    response = api.post(URL, raw, content_type="application/json")

    assert response.status_code == 200
    texts = Event.objects.order_by("id").values_list("payload_text", flat=True)
    assert list(texts) == ['{"order_id":"o-1","price":1.10}', '{"order_id":"o-2","big":1e308}']


def test_another_tenants_key_emits_to_its_own_endpoints_and_keys_only(
    api, other_api, subscribed, endpoint_b
):
    mine = post(api, [paid("mine", idempotency_key="shared")]).json()["results"][0]

    theirs = post(other_api, [paid("theirs", idempotency_key="shared")]).json()["results"][0]

    assert theirs["status"] == "created"
    assert theirs["id"] != mine["id"]
    assert theirs["deliveries"] == 1
    event = Event.objects.get(public_id=theirs["id"])
    assert list(event.deliveries.values_list("endpoint_id", flat=True)) == [endpoint_b.id]


def test_without_a_key_it_is_401(anon, subscribed):
    response = post(anon, [paid()])

    assert response.status_code == 401
    assert not Event.objects.exists()


def test_only_post_is_allowed(api, subscribed):
    assert api.get(URL).status_code == 405


def test_the_schema_describes_the_request_the_results_and_the_413(anon):
    schema = anon.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/events/batch/"]["post"]
    components = schema["components"]["schemas"]

    request = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = components[request.rsplit("/", 1)[-1]]
    assert body["required"] == ["events"]
    assert body["properties"]["events"]["maxItems"] == 500
    assert body["properties"]["atomic"] == {**body["properties"]["atomic"], "type": "boolean"}
    item = components[body["properties"]["events"]["items"]["$ref"].rsplit("/", 1)[-1]]
    assert set(item["properties"]) == {
        "event_type",
        "payload",
        "idempotency_key",
        "ordering_key",
        "channels",
    }
    assert item["required"] == ["event_type", "payload"]
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    result_list = components[answer.rsplit("/", 1)[-1]]
    assert set(result_list["required"]) == {
        "atomic",
        "created",
        "duplicates",
        "rejected",
        "results",
    }
    result = components["EventBatchResult"]
    assert set(result["required"]) == {
        "index", "status", "id", "deliveries", "code", "field", "detail",
    }  # fmt: skip
    assert components["EventBatchItemStatusEnum"]["enum"] == ["created", "duplicate", "rejected"]
    assert "idempotency_conflict" in components["EventBatchRejectionCodeEnum"]["enum"]
    assert "413" in operation["responses"]
