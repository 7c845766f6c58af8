"""An endpoint's transformation through the REST API: set, shown, checked, refused, applied."""

from __future__ import annotations

import json

import pytest

from deliveries.batch import deliver_due_batch
from subscriptions.models import Endpoint
from tests.api.conftest import assert_error_body, db_state
from webhooks.signing import verify
from webhooks.transformations import MAX_EXPRESSION_LENGTH

pytestmark = pytest.mark.django_db

CHAT = '{"text": "Order " & data.order_id & " paid"}'


def _create(api, **fields):
    return api.post(
        "/api/v1/endpoints/", {"url": "http://127.0.0.1:9/hook", **fields}, format="json"
    )


def test_an_endpoint_has_no_transformation_unless_given(api):
    response = _create(api)

    assert response.status_code == 201, response.content
    assert response.json()["transformation"] == ""


def test_create_with_a_transformation_stores_and_shows_it(api):
    response = _create(api, transformation=CHAT)

    assert response.status_code == 201, response.content
    endpoint_id = response.json()["id"]
    assert Endpoint.objects.get(id=endpoint_id).transformation == CHAT
    assert api.get(f"/api/v1/endpoints/{endpoint_id}/").json()["transformation"] == CHAT


def test_patch_sets_and_clears_the_transformation(api, endpoint_a):
    url = f"/api/v1/endpoints/{endpoint_a.id}/"

    assert api.patch(url, {"transformation": CHAT}, format="json").status_code == 200
    endpoint_a.refresh_from_db()
    assert endpoint_a.transformation == CHAT

    assert api.patch(url, {"transformation": ""}, format="json").status_code == 200
    endpoint_a.refresh_from_db()
    assert endpoint_a.transformation == ""


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ('{"text": }', "Not a valid JSONata expression: "),
        ("data[", "(at position 5)"),
        ("$match(data.x, /a+/)", "Regular expressions are not available"),
        ("data\x00", "Null characters are not allowed"),
        ("x" * (MAX_EXPRESSION_LENGTH + 1), f"no more than {MAX_EXPRESSION_LENGTH} characters"),
        (42, "Must be a string"),
        (["data"], "Must be a string"),
        ({"expression": "data"}, "Must be a string"),
        (None, "may not be null"),
    ],
)
def test_a_bad_transformation_is_a_400_naming_the_field_and_changes_nothing(
    api, endpoint_a, value, problem
):
    before = db_state()

    created = _create(api, transformation=value)
    patched = api.patch(
        f"/api/v1/endpoints/{endpoint_a.id}/", {"transformation": value}, format="json"
    )

    for response in (created, patched):
        assert response.status_code == 400, response.content
        body = assert_error_body(response, "invalid")
        assert list(body["fields"]) == ["transformation"]
        assert problem in body["fields"]["transformation"][0], body
    assert db_state() == before


@pytest.mark.parametrize(("escaped", "code"), [("\\u0000", "invalid"), ("\\ud800", "parse_error")])
def test_a_transformation_holding_nul_or_a_lone_surrogate_is_a_400(api, escaped, code):
    transformation = 'data.x & \\"' + escaped + '\\"'
    body = '{"url": "http://127.0.0.1:9/hook", "transformation": "' + transformation + '"}'

    response = api.post("/api/v1/endpoints/", body.encode(), content_type="application/json")

    assert response.status_code == 400, response.content
    error = assert_error_body(response, code)
    if code == "invalid":
        assert list(error["fields"]) == ["transformation"]
    assert not Endpoint.objects.exists()


def test_another_tenants_endpoint_cannot_be_given_a_transformation(other_api, endpoint_a):
    response = other_api.patch(
        f"/api/v1/endpoints/{endpoint_a.id}/", {"transformation": CHAT}, format="json"
    )

    assert response.status_code == 404
    endpoint_a.refresh_from_db()
    assert endpoint_a.transformation == ""


def test_the_test_action_sends_the_transformed_body(api, test_event_type, receiver, settings):
    settings.WEBHOOKS_TEST_WAIT_SECONDS = 0.0  # no worker runs here: the batch below sends it
    created = _create(
        api, url=receiver.url("/chat"), transformation='{"text": "n=" & $string(data.n)}'
    ).json()

    response = api.post(
        f"/api/v1/endpoints/{created['id']}/test/", {"payload": {"n": 1}}, format="json"
    )
    assert response.status_code == 202, response.content
    assert deliver_due_batch(limit=10) == 1

    [request] = receiver.requests("/chat")
    verify(created["secret"], request.headers, request.body)
    assert request.body == b'{"text":"n=1"}'


def test_a_failed_transformation_shows_as_a_transform_attempt(
    api, test_event_type, receiver, settings
):
    settings.WEBHOOKS_TEST_WAIT_SECONDS = 0.0
    created = _create(api, url=receiver.url("/chat"), transformation="data.missing").json()
    response = api.post(f"/api/v1/endpoints/{created['id']}/test/", {}, format="json")
    deliver_due_batch(limit=10)

    delivery = api.get(response.json()["url"]).json()

    [attempt] = delivery["attempts"]
    assert attempt["error_kind"] == "transform"
    assert "gave no result (undefined)" in attempt["error_message"]
    assert receiver.requests() == []


def test_openapi_schema_documents_the_transformation(anon):
    response = anon.get("/api/schema/", {"format": "json"})

    schema = json.loads(response.content)["components"]["schemas"]
    for component in ("Endpoint", "EndpointCreate"):
        described = schema[component]["properties"]["transformation"]
        assert described["type"] == "string"
        assert described["maxLength"] == MAX_EXPRESSION_LENGTH
        assert "JSONata" in described["description"]
    assert "transform" in json.dumps(schema["ErrorKindEnum"]["enum"])
