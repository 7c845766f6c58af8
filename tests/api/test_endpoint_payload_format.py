"""An endpoint's payload format through the REST API: default, create, change, refuse."""

from __future__ import annotations

import json

import pytest

from deliveries.batch import deliver_due_batch
from subscriptions.models import Endpoint
from tests.api.conftest import assert_error_body, db_state
from webhooks.formats import parse_form
from webhooks.signing import verify

pytestmark = pytest.mark.django_db


def _create(api, **fields):
    return api.post(
        "/api/v1/endpoints/", {"url": "http://127.0.0.1:9/hook", **fields}, format="json"
    )


def test_endpoints_are_json_unless_asked(api):
    response = _create(api)

    assert response.status_code == 201, response.content
    assert response.json()["payload_format"] == "json"
    assert Endpoint.objects.get(id=response.json()["id"]).payload_format == "json"


def test_create_with_xml_stores_and_shows_it(api):
    response = _create(api, payload_format="xml")

    assert response.status_code == 201, response.content
    endpoint_id = response.json()["id"]
    assert Endpoint.objects.get(id=endpoint_id).payload_format == "xml"
    assert api.get(f"/api/v1/endpoints/{endpoint_id}/").json()["payload_format"] == "xml"


def test_patch_changes_the_format_and_put_without_it_keeps_it(api, endpoint_a):
    response = api.patch(
        f"/api/v1/endpoints/{endpoint_a.id}/", {"payload_format": "form"}, format="json"
    )
    assert response.status_code == 200, response.content

    response = api.put(
        f"/api/v1/endpoints/{endpoint_a.id}/", {"url": "http://127.0.0.1:9/other"}, format="json"
    )

    assert response.status_code == 200, response.content
    endpoint_a.refresh_from_db()
    assert (endpoint_a.url, endpoint_a.payload_format) == ("http://127.0.0.1:9/other", "form")


@pytest.mark.parametrize("value", ["yaml", "XML", "", None, 1, ["xml"], {"x": 1}, "x\x00ml"])
def test_an_unknown_format_is_a_400_that_lists_the_choices(api, value):
    before = db_state()

    response = _create(api, payload_format=value)

    assert response.status_code == 400, response.content
    body = assert_error_body(response, "invalid")
    assert list(body["fields"]) == ["payload_format"]
    if value is not None:
        assert "json, xml, form" in body["detail"], body
    assert db_state() == before


def test_patch_with_an_unknown_format_changes_nothing(api, endpoint_a):
    response = api.patch(
        f"/api/v1/endpoints/{endpoint_a.id}/", {"payload_format": "soap"}, format="json"
    )

    assert response.status_code == 400
    assert "json, xml, form" in assert_error_body(response, "invalid")["detail"]
    endpoint_a.refresh_from_db()
    assert endpoint_a.payload_format == "json"


def test_the_test_action_sends_in_the_endpoints_format(api, test_event_type, receiver, settings):
    settings.WEBHOOKS_TEST_WAIT_SECONDS = 0.0  # no worker runs here: the batch below sends it
    created = _create(api, url=receiver.url("/form"), payload_format="form").json()

    response = api.post(
        f"/api/v1/endpoints/{created['id']}/test/", {"payload": {"n": 1}}, format="json"
    )
    assert response.status_code == 202, response.content
    assert deliver_due_batch(limit=10) == 1

    delivery = api.get(response.json()["url"]).json()
    assert delivery["attempts"][0]["response_status"] == 200
    [request] = receiver.requests("/form")
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    verify(created["secret"], request.headers, request.body)
    assert parse_form(request.body)["data"] == {"n": "1"}


def test_openapi_schema_documents_the_choices(anon):
    response = anon.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = json.loads(response.content)
    components = schema["components"]["schemas"]
    described = components["Endpoint"]["properties"]["payload_format"]
    [reference] = described["allOf"]
    assert components[reference["$ref"].rsplit("/", 1)[-1]]["enum"] == ["json", "xml", "form"]
    assert "json (the default)" in described["description"]
