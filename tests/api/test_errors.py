"""Every error has one JSON shape, and bad input is never a server error."""

from __future__ import annotations

import asyncio
import json

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
        ("put", "/api/v1/events/batch/", 405, "method_not_allowed"),
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


# --- Refused before any view: NUL in a path, lone surrogates, bad hosts, huge bodies --------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/events/msg_%00/",
        "/api/v1/event-types/%00/",
        "/api/v1/event-types/order.paid%00/",
        "/api/v1/endpoints/%00/",
        "/api/v1/replay-jobs/1%00/",
    ],
)
def test_a_nul_character_in_an_api_path_is_a_json_404(api, order_paid, path):
    response = api.get(path)

    assert response.status_code == 404
    assert "NUL" in assert_error_body(response, "not_found")["detail"]


@pytest.mark.parametrize("path", ["/dashboard/portal/%00/", "/inbox/ibx_%00/"])
def test_a_nul_character_in_a_page_path_is_a_404(client, path):
    response = client.get(path)

    assert response.status_code == 404
    assert b"NUL" in response.content


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/endpoints/", '{"url": "http://127.0.0.1:9/x", "payload_format": "\\ud800"}'),
        ("/api/v1/endpoints/", '{"url": "http://127.0.0.1:9/x", "description": "\\udfff"}'),
        ("/api/v1/endpoints/", '{"url": "http://127.0.0.1:9/x", "headers": {"X-\\ud800": "a"}}'),
        ("/api/v1/portal-links/", '{"capabilities": ["\\ud800"]}'),
        ("/api/v1/events/", '{"event_type": "order.paid\\ud800", "payload": {}}'),
    ],
)
def test_a_lone_surrogate_anywhere_in_a_body_is_a_json_400(api, order_paid, path, body):
    before = db_state()

    response = api.post(path, body, content_type="application/json")

    assert response.status_code == 400
    assert "unpaired surrogate" in assert_error_body(response, "parse_error")["detail"]
    assert db_state() == before


def test_a_nul_in_the_idempotency_key_header_is_a_json_400(api, order_paid):
    event = {"event_type": "order.paid", "payload": {"order_id": "o-1"}}
    before = db_state()

    response = api.post("/api/v1/events/", event, format="json", HTTP_IDEMPOTENCY_KEY="k\x00")

    assert response.status_code == 400
    assert "NUL" in assert_error_body(response, "invalid")["detail"]
    assert db_state() == before


def test_a_surrogate_pair_is_text_and_accepted(api):
    body = '{"url": "http://127.0.0.1:9/x", "description": "\\ud83d\\ude00"}'

    response = api.post("/api/v1/endpoints/", body, content_type="application/json")

    assert response.status_code == 201
    assert response.json()["description"] == "\U0001f600"


def test_a_host_header_not_served_is_a_json_400_under_the_api_and_a_page_elsewhere(api):
    host = "evil-" + "x" * 5000 + ".example"

    response = api.get("/api/v1/endpoints/", HTTP_HOST=host)
    page = api.get("/dashboard/", HTTP_HOST=host)

    assert response.status_code == 400
    body = assert_error_body(response, "bad_request")
    assert "Host" in body["detail"]
    assert len(response.content) < 200  # the header is not echoed
    assert page.status_code == 400
    assert page["Content-Type"].startswith("text/html")


def test_a_server_error_under_the_api_is_json(api, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("subscriptions.api.EndpointViewSet.list", explode)
    api.raise_request_exception = False

    response = api.get("/api/v1/endpoints/")

    assert response.status_code == 500
    assert "boom" not in assert_error_body(response, "server_error")["detail"]


TEN_MB = 10 * 1024 * 1024


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/endpoints/",
        "/api/v1/endpoints/{endpoint}/",
        "/api/v1/endpoints/{endpoint}/test/",
        "/api/v1/endpoints/{endpoint}/rotate-secret/",
        "/api/v1/portal-links/",
        "/api/v1/events/",
        "/api/v1/events/batch/",
        "/api/v1/no-such-route/",
    ],
)
def test_a_10_mb_body_to_any_api_route_is_a_json_413(api, endpoint_a, order_paid, path):
    before = db_state()
    body = '{"description": "' + "a" * TEN_MB + '"}'

    response = api.post(path.format(endpoint=endpoint_a.id), body, content_type="application/json")

    assert response.status_code == 413
    detail = assert_error_body(response, "payload_too_large")["detail"]
    assert str(len(body)) in detail
    assert len(response.content) < 300  # the body is not echoed
    assert db_state() == before


def test_a_body_just_under_djangos_limit_is_read_as_usual(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    body = {"url": "http://127.0.0.1:9/x", "description": "d" * 400}

    assert api.post("/api/v1/endpoints/", body, format="json").status_code == 201
    body["description"] = "d" * 2000
    assert api.post("/api/v1/endpoints/", body, format="json").status_code == 413


def test_the_events_route_keeps_its_own_limit_above_djangos(api, order_paid, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    settings.WEBHOOKS_MAX_PAYLOAD_BYTES = 5000
    event = {"event_type": "order.paid", "payload": {"order_id": "o" * 4000}}

    response = api.post("/api/v1/events/", event, format="json")

    assert response.status_code == 202, response.content[:300]


def test_a_body_over_the_limit_on_a_page_is_a_plain_413(admin_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = admin_client.post("/admin/subscriptions/tenant/add/", {"slug": "a" * 5000})

    assert response.status_code == 413
    assert response["Content-Type"].startswith("text/plain")


JSON = b"application/json"


def _asgi_post(path: str, chunks: list[bytes]) -> tuple[int, dict, bytes]:
    """POST through Django's ASGI handler with a body streamed in chunks, no Content-Length."""
    from config.asgi import application

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"testserver"), (b"content-type", JSON)],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
    }  # fmt: skip
    messages = [
        {"type": "http.request", "body": chunk, "more_body": n < len(chunks) - 1}
        for n, chunk in enumerate(chunks)
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        if messages:
            return messages.pop(0)
        await asyncio.Future()  # the client stays connected until Django has answered
        return {}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(application(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body


def test_a_streamed_body_without_content_length_is_measured_too(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100_000

    status, headers, body = _asgi_post("/api/v1/endpoints/", [b'{"pad": "', b"x" * 200_000, b'"}'])
    small_status, _, _ = _asgi_post("/api/v1/endpoints/", [b'{"url": ', b'"http://x/"}'])

    assert status == 413
    assert headers[b"Content-Type"].startswith(b"application/json")
    assert json.loads(body)["detail"] == (
        "The request body is 200011 bytes; this URL accepts at most 100000 bytes."
    )
    assert small_status == 401  # read as usual, and refused for want of a key
