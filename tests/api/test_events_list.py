"""Listing a tenant's events: newest first, paged by cursor, filtered by type, time, idempotency
key and one payload value (`data.<path>=<value>`). Runs on PostgreSQL (containment, the GIN
index) and on SQLite (the value at the path) against the same expectations."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.api.conftest import assert_error_body
from tests.factories import EventTypeFactory
from webhooks import send_event, send_events
from webhooks.models import Event

pytestmark = pytest.mark.django_db


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content[:300]
    return [event["id"] for event in response.json()["results"]]


def store(tenant, event_type, payload, *, ago: timedelta = timedelta(0), key=None) -> Event:
    return Event.objects.create(
        tenant=tenant, event_type=event_type, payload=payload, idempotency_key=key,
        created_at=timezone.now() - ago,
    )  # fmt: skip


def test_events_are_listed_newest_first_and_only_the_keys_tenants(
    api, tenant_a, tenant_b, order_paid
):
    older = store(tenant_a, order_paid, {"order_id": "o-1"}, ago=timedelta(minutes=5))
    newer = store(tenant_a, order_paid, {"order_id": "o-2"})
    store(tenant_b, order_paid, {"order_id": "o-3"})

    response = api.get("/api/v1/events/")

    assert ids(response) == [newer.public_id, older.public_id]
    [first, _] = response.json()["results"]
    assert first == {
        "id": newer.public_id, "event_type": "order.paid", "payload": {"order_id": "o-2"},
        "idempotency_key": None, "ordering_key": "", "channels": [],
        "created_at": first["created_at"],
    }  # fmt: skip


def test_pages_follow_the_cursor_through_events_that_share_a_timestamp(api, tenant_a, order_paid):
    # A batch stores its events with one timestamp: the cursor must neither skip nor repeat them.
    send_events(tenant_a, [("order.paid", {"order_id": f"o-{n}"}) for n in range(7)])
    store(tenant_a, order_paid, {"order_id": "later"}, ago=timedelta(seconds=-1))

    seen, cursor = [], None
    while True:
        response = api.get(
            "/api/v1/events/", {"limit": 3, **({"cursor": cursor} if cursor else {})}
        )
        seen += ids(response)
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break

    expected = list(
        Event.objects.order_by("-created_at", "-id").values_list("public_id", flat=True)
    )
    assert seen == expected
    assert len(set(seen)) == 8


def test_events_are_filtered_by_type_time_and_idempotency_key(api, tenant_a, order_paid):
    shipped = EventTypeFactory(name="order.shipped")
    old = store(tenant_a, order_paid, {"order_id": "o-1"}, ago=timedelta(hours=2), key="k-1")
    recent = store(tenant_a, order_paid, {"order_id": "o-2"}, key="k-2")
    other_type = store(tenant_a, shipped, {"order_id": "o-2"})
    an_hour_ago = (timezone.now() - timedelta(hours=1)).isoformat()

    assert ids(api.get("/api/v1/events/", {"event_type": "order.shipped"})) == [
        other_type.public_id
    ]
    assert ids(api.get("/api/v1/events/", {"created_before": an_hour_ago})) == [old.public_id]
    assert ids(
        api.get("/api/v1/events/", {"created_after": an_hour_ago, "event_type": "order.paid"})
    ) == [recent.public_id]
    assert ids(api.get("/api/v1/events/", {"idempotency_key": "k-1"})) == [old.public_id]
    assert ids(api.get("/api/v1/events/", {"event_type": "order.unknown"})) == []


def test_a_payload_value_finds_the_events_that_hold_it_at_that_path(
    api, tenant_a, tenant_b, order_paid
):
    wanted = store(tenant_a, order_paid, {"order_id": "ord_1001", "amount": 5})
    store(tenant_a, order_paid, {"order_id": "ord_1002", "amount": 5})
    store(tenant_a, order_paid, {"note": {"order_id": "ord_1001"}})  # the value, elsewhere
    store(tenant_b, order_paid, {"order_id": "ord_1001"})  # another tenant's

    assert ids(api.get("/api/v1/events/?data.order_id=ord_1001")) == [wanted.public_id]
    assert ids(api.get("/api/v1/events/?data.order_id=ord_9999")) == []


def test_a_nested_path_and_a_number_match_the_json_number_and_the_string(api, tenant_a, order_paid):
    as_number = store(tenant_a, order_paid, {"customer": {"id": 42}}, ago=timedelta(seconds=3))
    as_text = store(tenant_a, order_paid, {"customer": {"id": "42"}}, ago=timedelta(seconds=2))
    written_long = store(tenant_a, order_paid, {"customer": {"id": 42.0}}, ago=timedelta(seconds=1))
    store(tenant_a, order_paid, {"customer": {"id": 43}})
    store(tenant_a, order_paid, {"customer": [{"id": 42}]})  # a path names object keys only

    found = ids(api.get("/api/v1/events/?data.customer.id=42"))

    assert found == [written_long.public_id, as_text.public_id, as_number.public_id]


@pytest.mark.parametrize(
    ("written", "stored", "not_matched"),
    [("true", True, 1), ("false", False, 0), ("null", None, "")],
)
def test_true_false_and_null_match_the_json_literal_and_the_string(
    api, tenant_a, order_paid, written, stored, not_matched
):
    literal = store(tenant_a, order_paid, {"flag": stored}, ago=timedelta(seconds=2))
    text = store(tenant_a, order_paid, {"flag": written}, ago=timedelta(seconds=1))
    store(tenant_a, order_paid, {"flag": not_matched})
    store(tenant_a, order_paid, {"other": written})

    assert ids(api.get(f"/api/v1/events/?data.flag={written}")) == [
        text.public_id,
        literal.public_id,
    ]


def test_keys_named_like_lookups_are_plain_keys(api, tenant_a, order_paid):
    wanted = store(tenant_a, order_paid, {"in": {"contains": "x"}})
    store(tenant_a, order_paid, {"in": {"contains": "y"}})

    assert ids(api.get("/api/v1/events/?data.in.contains=x")) == [wanted.public_id]


def test_a_payload_filter_combines_with_the_other_filters(api, tenant_a, order_paid):
    shipped = EventTypeFactory(name="order.shipped")
    paid = store(tenant_a, order_paid, {"order_id": "ord_7"})
    store(tenant_a, shipped, {"order_id": "ord_7"})

    assert ids(api.get("/api/v1/events/?data.order_id=ord_7&event_type=order.paid")) == [
        paid.public_id
    ]


def test_events_sent_through_send_event_are_found_by_their_payload(api, tenant_a, order_paid):
    event = send_event(tenant_a, "order.paid", {"order_id": "ord_5", "amount": 12})

    assert ids(api.get("/api/v1/events/?data.amount=12")) == [event.public_id]


@pytest.mark.parametrize(
    "query",
    [
        "data.=x",
        "data.1st=x",
        "data.-a=x",
        "data.a..b=x",
        "data.a.b.c.d.e.f=x",  # six keys: one too deep
        "data." + "k" * 65 + "=x",
        "data.a b=x",
        "data.a%E2%82%AC=x",
        "data.a.=x",
    ],
)
def test_a_bad_payload_path_is_a_400_that_says_what_a_path_is(api, tenant_a, query):
    response = api.get(f"/api/v1/events/?{query}")

    assert response.status_code == 400
    body = assert_error_body(response, "invalid")
    [(name, [message])] = body["fields"].items()
    assert name.startswith("data.")
    assert "a path of 1 to 5 object keys" in message


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("data.order_id=", "data.order_id", "cannot be empty"),
        ("data.order_id=" + "x" * 256, "data.order_id", "at most 255"),
        ("data.a=1&data.b=2", "data", "one payload filter"),
        ("data.a=1&data.a=2", "data", "one payload filter"),
    ],
)
def test_an_empty_long_or_second_payload_filter_is_a_400(api, tenant_a, query, field, message):
    response = api.get(f"/api/v1/events/?{query}")

    assert response.status_code == 400
    messages = assert_error_body(response, "invalid")["fields"][field]
    assert message in messages[0]


@pytest.mark.parametrize(
    "query",
    [
        "data.a=%00",
        "data.a%00=1",
        "created_after=2026-13-01",
        "created_before=99999-01-01T00:00:00Z",
        "event_type=",
        "stauts=x",
        "idempotency_key=" + "k" * 256,
        "limit=99999999999999999999",
    ],
)
def test_other_bad_queries_are_400s(api, tenant_a, query):
    response = api.get(f"/api/v1/events/?{query}")

    assert response.status_code == 400
    assert_error_body(response)


@pytest.mark.parametrize(
    "query",
    ["data.a=%ED%A0%80", "data.a=%FF", "idempotency_key=%ED%A0%80", "event_type=%F0%9F%98%80"],
)
def test_undecodable_or_odd_text_finds_nothing_and_is_no_500(api, tenant_a, order_paid, query):
    store(tenant_a, order_paid, {"a": "x"}, key="k")

    assert ids(api.get(f"/api/v1/events/?{query}")) == []


def test_a_huge_number_is_matched_as_text_only(api, tenant_a, order_paid):
    as_text = store(tenant_a, order_paid, {"n": "1e400"})

    assert ids(api.get("/api/v1/events/?data.n=1e400")) == [as_text.public_id]


@pytest.mark.parametrize("cursor", ["not-a-cursor", "cD0yMDI2LTEzLTAx", "cD1ub3RhZGF0ZQ=="])
def test_a_forged_cursor_is_a_404_not_a_500(api, tenant_a, cursor):
    # cD0yMDI2LTEzLTAx is "p=2026-13-01", cD1ub3RhZGF0ZQ== is "p=notadate".
    response = api.get("/api/v1/events/", {"cursor": cursor})

    assert response.status_code == 404
    assert_error_body(response)


def test_the_schema_states_the_payload_filter_as_an_exploded_object(anon):
    schema = anon.get("/api/schema/", {"format": "json"}).json()
    parameters = schema["paths"]["/api/v1/events/"]["get"]["parameters"]
    [data] = [parameter for parameter in parameters if parameter["name"] == "data"]

    assert (data["in"], data["style"], data["explode"]) == ("query", "form", True)
    assert data["schema"]["maxProperties"] == 1
    assert data["schema"]["propertyNames"]["pattern"].startswith("^data")
    assert {"event_type", "created_after", "created_before", "idempotency_key", "cursor"} <= {
        parameter["name"] for parameter in parameters
    }
