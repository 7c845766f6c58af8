"""The event-type catalog: readable by every key, changed only with a staff key."""

from __future__ import annotations

import json
import uuid

import pytest

from subscriptions.models import EventType
from tests.api.conftest import ORDER_SCHEMA, assert_error_body, db_state
from tests.factories import EventTypeFactory
from tests.fetch_trap import SECRET, FetchTrap

pytestmark = pytest.mark.django_db

INVALID_SCHEMAS = [
    pytest.param({"type": "nope"}, id="unknown-type"),
    pytest.param({"type": "string", "pattern": "("}, id="bad-regex"),
    pytest.param({"properties": {"a": {"minLength": -1}}}, id="negative-minLength"),
    pytest.param({"required": "order_id"}, id="required-not-a-list"),
    pytest.param("object", id="a-string"),
    pytest.param([{"type": "object"}], id="a-list"),
]


def test_list_shows_the_catalog_with_schemas(api, order_paid, test_event_type):
    response = api.get("/api/v1/event-types/")

    assert response.status_code == 200
    by_name = {event_type["name"]: event_type for event_type in response.json()}
    assert by_name["order.paid"]["schema"] == ORDER_SCHEMA
    assert by_name["order.paid"]["archived"] is False
    assert "hookline.test" in by_name


@pytest.mark.parametrize("name", ["order.paid", "invoice.json", "a.b.c-d_e"])
def test_a_dotted_name_works_in_the_url(api, staff_api, name):
    EventTypeFactory(name=name)

    read = api.get(f"/api/v1/event-types/{name}/")
    changed = staff_api.patch(f"/api/v1/event-types/{name}/", {"description": "x"}, format="json")

    assert read.status_code == 200
    assert read.json()["name"] == name
    assert changed.status_code == 200
    assert EventType.objects.get(name=name).description == "x"


def test_unknown_event_type_is_404(api, order_paid):
    response = api.get("/api/v1/event-types/order.refunded/")

    assert response.status_code == 404
    assert_error_body(response, "not_found")


def test_listing_needs_a_key(anon, order_paid):
    assert anon.get("/api/v1/event-types/").status_code == 401


def test_staff_key_creates_an_event_type(staff_api):
    response = staff_api.post(
        "/api/v1/event-types/",
        {"name": "invoice.sent", "description": "An invoice went out.", "schema": ORDER_SCHEMA},
        format="json",
    )

    assert response.status_code == 201, response.content
    stored = EventType.objects.get(name="invoice.sent")
    assert stored.schema == ORDER_SCHEMA
    assert stored.description == "An invoice went out."
    assert response.json()["name"] == "invoice.sent"


def test_creating_an_event_type_without_a_staff_key_is_403(api):
    response = api.post("/api/v1/event-types/", {"name": "invoice.sent"}, format="json")

    assert response.status_code == 403
    assert_error_body(response, "permission_denied")
    assert not EventType.objects.filter(name="invoice.sent").exists()


@pytest.mark.parametrize("method", ["patch", "put"])
def test_changing_an_event_type_without_a_staff_key_is_403(api, order_paid, method):
    response = getattr(api, method)(
        "/api/v1/event-types/order.paid/",
        {"name": "order.paid", "description": "changed", "schema": None},
        format="json",
    )

    assert response.status_code == 403
    order_paid.refresh_from_db()
    assert order_paid.description == ""
    assert order_paid.schema == ORDER_SCHEMA


def test_staff_key_patches_an_event_type_by_its_dotted_name(staff_api, order_paid):
    new_schema = {"type": "object", "required": ["order_id", "currency"]}

    response = staff_api.patch(
        "/api/v1/event-types/order.paid/",
        {"description": "Paid in full.", "schema": new_schema},
        format="json",
    )

    assert response.status_code == 200, response.content
    order_paid.refresh_from_db()
    assert order_paid.description == "Paid in full."
    assert order_paid.schema == new_schema


def test_staff_key_archives_an_event_type(staff_api, order_paid):
    response = staff_api.patch("/api/v1/event-types/order.paid/", {"archived": True}, format="json")

    assert response.status_code == 200
    order_paid.refresh_from_db()
    assert order_paid.archived is True


@pytest.mark.parametrize("schema", INVALID_SCHEMAS)
def test_creating_with_an_invalid_json_schema_is_400(staff_api, schema):
    response = staff_api.post(
        "/api/v1/event-types/", {"name": "invoice.sent", "schema": schema}, format="json"
    )

    assert response.status_code == 400
    body = assert_error_body(response, "invalid")
    assert "schema" in body["fields"]
    assert not EventType.objects.filter(name="invoice.sent").exists()


@pytest.mark.parametrize("schema", INVALID_SCHEMAS)
def test_patching_in_an_invalid_json_schema_is_400(staff_api, order_paid, schema):
    response = staff_api.patch("/api/v1/event-types/order.paid/", {"schema": schema}, format="json")

    assert response.status_code == 400
    assert "schema" in assert_error_body(response, "invalid")["fields"]
    order_paid.refresh_from_db()
    assert order_paid.schema == ORDER_SCHEMA


def test_a_schema_whose_ref_points_nowhere_is_refused(staff_api):
    response = staff_api.post(
        "/api/v1/event-types/",
        {"name": "invoice.sent", "schema": {"$ref": "#/definitions/missing"}},
        format="json",
    )

    assert response.status_code == 400
    assert not EventType.objects.filter(name="invoice.sent").exists()


def test_a_schema_with_a_nul_character_is_400_not_500(staff_api):
    response = staff_api.post(
        "/api/v1/event-types/",
        {"name": "invoice.sent", "schema": {"title": "bad\u0000title"}},
        format="json",
    )

    assert response.status_code == 400


@pytest.mark.parametrize("name", ["bad name", "order..paid", ".order", "order/paid", ""])
def test_invalid_event_type_names_are_400(staff_api, name):
    before = db_state()

    response = staff_api.post("/api/v1/event-types/", {"name": name}, format="json")

    assert response.status_code == 400
    assert "name" in assert_error_body(response, "invalid")["fields"]
    assert db_state() == before


def test_a_taken_name_is_400(staff_api, order_paid):
    response = staff_api.post("/api/v1/event-types/", {"name": "order.paid"}, format="json")

    assert response.status_code == 400
    assert "name" in assert_error_body(response, "invalid")["fields"]
    assert EventType.objects.filter(name="order.paid").count() == 1


# --- References outside the schema: never fetched, never read ----------------------------------


@pytest.fixture
def trap():
    with FetchTrap() as server:
        yield server


@pytest.fixture
def secret_file(tmp_path):
    """A local JSON file whose content must never reach an API response."""
    path = tmp_path / "private.json"
    path.write_text(json.dumps({"enum": [SECRET]}))
    return path


# Each names a place outside the schema; filled in with the trap's URL or the file's path.
OUTSIDE_REFERENCES = [
    pytest.param("{url}", id="http"),
    pytest.param("{url}#/definitions/a", id="http-with-fragment"),
    pytest.param("{url_without_scheme}", id="scheme-relative"),
    pytest.param("{file}", id="file"),
    pytest.param("{file}#", id="file-with-fragment"),
    pytest.param("private.json", id="relative"),
]


def outside_reference(template: str, trap, secret_file) -> str:
    url = trap.url()
    return template.format(
        url=url, url_without_scheme=url.removeprefix("http:"), file=secret_file.as_uri()
    )


def schemas_referring_to(target: str) -> list[dict]:
    return [
        {"$ref": target},
        {"type": "object", "properties": {"order": {"$ref": target}}},
        {"$id": "urn:hookline:x", "allOf": [{"$ref": target}]},
        {"$schema": "https://json-schema.org/draft/2020-12/schema", "$dynamicRef": target},
        {"$schema": "http://json-schema.org/draft-07/schema#", "not": {"$ref": target}},
    ]


@pytest.mark.parametrize("template", OUTSIDE_REFERENCES)
def test_a_schema_referring_outside_itself_is_refused_and_nothing_is_fetched(
    staff_api, order_paid, trap, secret_file, template
):
    answers = []
    for schema in schemas_referring_to(outside_reference(template, trap, secret_file)):
        created = staff_api.post(
            "/api/v1/event-types/", {"name": "invoice.sent", "schema": schema}, format="json"
        )
        patched = staff_api.patch(
            "/api/v1/event-types/order.paid/", {"schema": schema}, format="json"
        )
        answers += [created, patched]
        for response in (created, patched):
            assert response.status_code == 400, (schema, response.content)
            body = assert_error_body(response, "invalid")
            assert "points outside the schema" in body["fields"]["schema"][0]

    assert trap.paths == []
    assert not any(SECRET.encode() in response.content for response in answers)
    assert not EventType.objects.filter(name="invoice.sent").exists()
    order_paid.refresh_from_db()
    assert order_paid.schema == ORDER_SCHEMA


def test_references_within_the_schema_still_work(staff_api, api, tenant_a):
    schema = {
        "$defs": {"id": {"type": "string", "pattern": "^o-"}},
        "type": "object",
        "properties": {"order_id": {"$ref": "#/$defs/id"}, "self": {"$ref": "#"}},
        "required": ["order_id"],
    }

    created = staff_api.post(
        "/api/v1/event-types/", {"name": "invoice.sent", "schema": schema}, format="json"
    )
    good = api.post(
        "/api/v1/events/",
        {"event_type": "invoice.sent", "payload": {"order_id": "o-1"}},
        format="json",
    )
    bad = api.post(
        "/api/v1/events/", {"event_type": "invoice.sent", "payload": {"order_id": 7}}, format="json"
    )

    assert created.status_code == 201, created.content
    assert good.status_code == 202, good.content
    assert bad.status_code == 400
    assert "order_id" in bad.json()["detail"]


@pytest.mark.parametrize("template", OUTSIDE_REFERENCES)
def test_an_event_checked_against_a_stored_outside_reference_fetches_and_reads_nothing(
    api, tenant_a, trap, secret_file, template
):
    # Stored before such schemas were refused: straight into the table, past every check.
    schemas = schemas_referring_to(outside_reference(template, trap, secret_file))
    # Names of their own: the emit path caches event types by name for a few seconds.
    names = [f"legacy.{uuid.uuid4().hex}" for _ in schemas]
    EventType.objects.bulk_create(
        EventType(name=name, schema=schema) for name, schema in zip(names, schemas, strict=True)
    )

    answers = [
        api.post("/api/v1/events/", {"event_type": name, "payload": {"order": "x"}}, format="json")
        for name in names
    ]

    assert trap.paths == []
    for response in answers:
        assert response.status_code == 400, response.content
        assert "cannot be checked" in assert_error_body(response, "invalid")["detail"]
        assert SECRET.encode() not in response.content
