"""Every error has one JSON shape, and bad input is never a server error."""

from __future__ import annotations

import pytest

from tests.api.conftest import assert_error_body, db_state

pytestmark = pytest.mark.django_db


def test_a_validation_error_names_the_field_and_says_what_is_wrong(api):
    response = api.post("/api/v1/endpoints/", {"url": "ftp://127.0.0.1/x"}, format="json")

    assert response.status_code == 400
    body = assert_error_body(response, "invalid")
    assert set(body) == {"code", "detail", "fields"}
    assert body["detail"].startswith("url: ")
    assert body["detail"].removeprefix("url: ") in body["fields"]["url"]
    assert all(isinstance(message, str) for message in body["fields"]["url"])


def test_errors_on_several_fields_list_them_all(api):
    response = api.post(
        "/api/v1/endpoints/",
        {"url": "ftp://127.0.0.1/x", "rate_limit": -1, "headers": {"Host": "x"}},
        format="json",
    )

    assert response.status_code == 400
    assert set(assert_error_body(response, "invalid")["fields"]) == {"url", "rate_limit", "headers"}


def test_an_invalid_body_that_is_not_an_object_is_400(api):
    response = api.post("/api/v1/endpoints/", [1, 2], format="json")

    assert response.status_code == 400
    assert "non_field_errors" in assert_error_body(response, "invalid")["fields"]


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("get", "/api/v1/endpoints/999999999/", 404, "not_found"),
        ("get", "/api/v1/endpoints/not-a-number/", 404, "not_found"),
        ("get", "/api/v1/no-such-resource/", 404, "not_found"),
        ("delete", "/api/v1/event-types/order.paid/", 405, "method_not_allowed"),
        ("get", "/api/v1/events/", 405, "method_not_allowed"),
    ],
)
def test_other_errors_have_the_same_shape(staff_api, order_paid, method, path, status, code):
    response = getattr(staff_api, method)(path, {}, format="json")

    assert response.status_code == status
    body = assert_error_body(response, code)
    assert "fields" not in body


def test_a_forbidden_change_has_the_same_shape(api):
    response = api.post("/api/v1/event-types/", {"name": "x.y"}, format="json")

    assert response.status_code == 403
    body = assert_error_body(response, "permission_denied")
    assert "staff" in body["detail"]
    assert "fields" not in body


def test_a_body_that_is_not_json_is_415(api):
    response = api.post("/api/v1/endpoints/", "url=http://x", content_type="text/plain")

    assert response.status_code == 415
    assert_error_body(response, "unsupported_media_type")


def test_malformed_json_is_a_parse_error(api):
    response = api.post("/api/v1/endpoints/", "{", content_type="application/json")

    assert response.status_code == 400
    assert "JSON" in assert_error_body(response, "parse_error")["detail"]


# --- Never a server error for bad input -----------------------------------------------------------

NUL = "\u0000"


BAD_REQUESTS = [
    ("post", "/api/v1/endpoints/", {"url": "http://[::1"}),
    ("post", "/api/v1/endpoints/", {"url": "http://" + "a" * 70 + ".example/"}),
    ("post", "/api/v1/endpoints/", {"url": f"http://{NUL}/"}),
    ("post", "/api/v1/endpoints/", {"url": "http://127.0.0.1/", "description": f"a{NUL}"}),
    ("post", "/api/v1/endpoints/", {"url": "http://127.0.0.1/", "rate_limit": 10**20}),
    ("post", "/api/v1/endpoints/", {"url": "http://127.0.0.1/", "event_types": [{"a": 1}]}),
    ("post", "/api/v1/endpoints/", {"url": "http://127.0.0.1/", "headers": {"X": "a" * 5000}}),
    ("post", "/api/v1/endpoints/", {"url": "http://127.0.0.1/", "secret": "whsec_" + "=" * 8}),
    ("post", "/api/v1/endpoints/", {"url": "http://127.0.0.1/" + "a" * 3000}),
    ("patch", "/api/v1/endpoints/{endpoint}/", {"is_active": "maybe"}),
    ("post", "/api/v1/endpoints/{endpoint}/rotate-secret/", [60]),
    ("post", "/api/v1/endpoints/{endpoint}/recover/", {"since": "0001-01-01T00:00:00+05:00"}),
    ("post", "/api/v1/endpoints/{endpoint}/recover/", {"since": 12}),
    ("post", "/api/v1/endpoints/{endpoint}/test/", {"event_type": "x" * 500}),
    ("post", "/api/v1/events/", {"event_type": "o" * 300, "payload": {}}),
    ("get", "/api/v1/deliveries/?created_before=9999-12-31T23:59:59-05:00", None),
    ("get", "/api/v1/deliveries/99999999999999999999/", None),
    ("get", "/api/v1/replay-jobs/abc/", None),
    pytest.param(
        "post",
        "/api/v1/events/",
        {"event_type": "order.paid", "payload": {"order_id": f"o{NUL}"}},
        id="event-payload-with-nul",
    ),
    pytest.param(
        "post",
        "/api/v1/endpoints/{endpoint}/test/",
        {"event_type": "order.paid", "payload": {"order_id": f"o{NUL}"}},
        id="test-payload-with-nul",
    ),
    pytest.param(
        "get",
        "/api/v1/deliveries/?cursor=cD1hYmM%3D",
        None,
        id="cursor-with-bad-position",
    ),
]


@pytest.mark.parametrize(("method", "path", "body"), BAD_REQUESTS)
def test_bad_input_is_a_4xx_json_error_never_a_500(api, endpoint_a, order_paid, method, path, body):
    before = db_state()

    response = getattr(api, method)(path.format(endpoint=endpoint_a.id), body, format="json")

    assert 400 <= response.status_code < 500, response.content[:300]
    assert_error_body(response)
    assert db_state() == before
