"""The OpenAPI schema says exactly what the server does: what it allows is accepted, what it
forbids is refused with a 400 and changes nothing, and what responses always carry is required."""

from __future__ import annotations

import re

import pytest

from tests.api.conftest import assert_error_body, db_state

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(anon):
    return anon.get("/api/schema/", {"format": "json"}).json()


def component(schema, name: str) -> dict:
    return schema["components"]["schemas"][name]


def test_response_fields_that_are_always_present_are_required(schema):
    assert "secret" in component(schema, "EndpointCreate")["required"]
    assert {"status", "created_at", "next_attempt_at"} <= set(
        component(schema, "Delivery")["required"]
    )
    assert {"next", "next_cursor", "results"} <= set(
        component(schema, "PaginatedDeliveryList")["required"]
    )
    assert component(schema, "Error")["required"] == ["code", "detail"]


def test_a_new_endpoints_secret_states_its_pattern(schema):
    pattern = component(schema, "EndpointCreateRequest")["properties"]["secret"]["pattern"]
    assert pattern.startswith("^whsec_")


def test_integer_ids_in_paths_start_at_one(schema):
    ids = [
        parameter["schema"]
        for path in schema["paths"].values()
        for operation in path.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "path" and parameter["schema"].get("type") == "integer"
    ]
    assert ids
    assert all(id_schema["minimum"] == 1 for id_schema in ids)


def test_the_limit_parameter_states_its_range(schema):
    [limit] = [
        parameter
        for parameter in schema["paths"]["/api/v1/deliveries/"]["get"]["parameters"]
        if parameter["name"] == "limit"
    ]
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 200)


@pytest.mark.parametrize("limit", ["0.5", "abc", "0", "201", "", "-1", "1e2"])
def test_a_limit_that_is_not_a_whole_number_in_range_is_a_400(api, limit):
    response = api.get("/api/v1/deliveries/", {"limit": limit})

    assert response.status_code == 400
    assert list(assert_error_body(response, "invalid")["fields"]) == ["limit"]


@pytest.mark.parametrize("name", ["status", "created_after", "created_before", "event_type"])
def test_an_empty_filter_value_is_a_400_not_an_ignored_filter(api, name):
    response = api.get("/api/v1/deliveries/", {name: ""})

    assert response.status_code == 400
    assert name in assert_error_body(response, "invalid")["fields"]


@pytest.mark.parametrize(
    "path", ["/api/v1/deliveries/", "/api/v1/endpoints/", "/api/v1/event-types/"]
)
def test_an_unknown_query_parameter_is_a_400_that_names_it(api, path):
    response = api.get(path, {"stauts": "failed"})

    assert response.status_code == 400
    assert assert_error_body(response, "invalid")["detail"] == "Unknown query parameter 'stauts'."


def test_documented_query_parameters_are_accepted(api, endpoint_a):
    response = api.get(
        "/api/v1/deliveries/", {"status": "failed", "endpoint": endpoint_a.id, "limit": "2"}
    )

    assert response.status_code == 200
    assert response.json()["next_cursor"] is None


@pytest.mark.parametrize(
    ("field", "value"),
    [("is_active", "true"), ("is_active", 1), ("rate_limit", "5"), ("rate_limit", True),
     ("description", 5), ("event_types", "order.paid"), ("headers", 0), ("headers", None),
     ("rate_limit", 2.5)],
)  # fmt: skip
def test_endpoint_fields_of_another_json_type_are_a_400_that_changes_nothing(
    api, order_paid, field, value
):
    before = db_state()
    response = api.post(
        "/api/v1/endpoints/", {"url": "http://127.0.0.1:9/hook", field: value}, format="json"
    )

    assert response.status_code == 400
    assert field in assert_error_body(response, "invalid")["fields"]
    assert db_state() == before


def test_a_whole_number_written_with_a_fraction_is_an_integer(api):
    response = api.post(
        "/api/v1/endpoints/", {"url": "http://127.0.0.1:9/hook", "rate_limit": 5.0}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["rate_limit"] == 5


def test_event_type_archived_must_be_a_boolean(staff_api):
    response = staff_api.post(
        "/api/v1/event-types/", {"name": "order.shipped", "archived": 0}, format="json"
    )

    assert response.status_code == 400
    assert list(assert_error_body(response, "invalid")["fields"]) == ["archived"]


def test_an_event_type_given_as_a_number_is_a_400(api, order_paid):
    before = db_state()
    response = api.post("/api/v1/events/", {"event_type": 0, "payload": {}}, format="json")

    assert response.status_code == 400
    assert list(assert_error_body(response, "invalid")["fields"]) == ["event_type"]
    assert db_state() == before


def test_portal_link_lifetime_must_be_an_integer(api):
    response = api.post("/api/v1/portal-links/", {"expires_in": "600"}, format="json")

    assert response.status_code == 400
    assert list(assert_error_body(response, "invalid")["fields"]) == ["expires_in"]


@pytest.mark.parametrize("blank", ["\x1f", "\x1c", " \u3000", "\x85"])
def test_a_required_text_field_states_that_whitespace_alone_is_blank(
    schema, api, order_paid, blank
):
    pattern = component(schema, "EventCreateRequest")["properties"]["event_type"]["pattern"]
    response = api.post("/api/v1/events/", {"event_type": blank, "payload": {}}, format="json")

    assert re.match(pattern, blank) is None
    assert re.match(pattern, "order.paid")
    assert response.status_code == 400
