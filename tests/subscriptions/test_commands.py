from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from subscriptions.models import TEST_EVENT_TYPE, ApiKey, EventType, Tenant
from subscriptions.services import hash_api_key
from tests.fetch_trap import SECRET, FetchTrap

pytestmark = pytest.mark.django_db


def run(*args: str) -> list[str]:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().splitlines()


def test_createtenant_prints_a_working_api_key_as_its_last_line():
    lines = run("createtenant", "acme", "--name", "Acme Inc.")

    key = lines[-1]
    tenant = Tenant.objects.get(slug="acme")
    assert tenant.name == "Acme Inc."
    assert key.startswith("hl_")
    stored = ApiKey.objects.get(tenant=tenant)
    assert stored.key_hash == hash_api_key(key)
    assert key not in stored.key_hash
    assert key.startswith(stored.prefix)


def test_createtenant_with_staff_key_prints_a_key_that_may_change_the_catalog():
    lines = run("createtenant", "ops", "--staff-key")

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {lines[-1]}")
    response = client.post("/api/v1/event-types/", {"name": "order.paid"}, format="json")

    assert response.status_code == 201, response.content
    assert EventType.objects.filter(name="order.paid").exists()
    assert ApiKey.objects.get(tenant__slug="ops").is_staff
    assert "staff API key" in lines[-2]


def test_createtenant_without_staff_key_prints_a_key_that_may_not_change_the_catalog():
    lines = run("createtenant", "acme")

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {lines[-1]}")
    response = client.post("/api/v1/event-types/", {"name": "order.paid"}, format="json")

    assert response.status_code == 403
    assert not ApiKey.objects.get(tenant__slug="acme").is_staff


def test_createtenant_refuses_a_taken_slug():
    run("createtenant", "acme")
    with pytest.raises(CommandError, match="already exists"):
        run("createtenant", "acme")
    assert Tenant.objects.count() == 1


def test_createtenant_refuses_an_unknown_member():
    with pytest.raises(CommandError, match="No such user: ghost"):
        run("createtenant", "acme", "--member", "ghost")
    assert not Tenant.objects.exists()


def test_createeventtype_adds_a_type_with_its_schema(tmp_path):
    schema = {"type": "object", "required": ["order_id"]}
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(schema))

    run("createeventtype", "order.paid", "--description", "Paid", "--schema", f"@{path}")

    event_type = EventType.objects.get(name="order.paid")
    assert (event_type.description, event_type.schema) == ("Paid", schema)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["order..paid"], "dot-separated"),
        (["order.paid", "--schema", "{not json"], "Cannot read the schema"),
        (["order.paid", "--schema", '{"type": "nonsense"}'], "not a valid JSON Schema"),
    ],
)
def test_createeventtype_refuses_bad_input(args, message):
    with pytest.raises(CommandError, match=message):
        run("createeventtype", *args)
    assert not EventType.objects.exclude(name=TEST_EVENT_TYPE).exists()


def test_createeventtype_refuses_a_schema_referring_outside_itself_and_fetches_nothing(tmp_path):
    secret_file = tmp_path / "private.json"
    secret_file.write_text(json.dumps({"enum": [SECRET]}))
    with FetchTrap() as trap:
        for target in (trap.url(), secret_file.as_uri()):
            schema = json.dumps({"type": "object", "properties": {"a": {"$ref": target}}})
            with pytest.raises(CommandError, match="points outside the schema") as info:
                run("createeventtype", "order.paid", "--schema", schema)
            assert SECRET not in str(info.value)

    assert trap.paths == []
    assert not EventType.objects.filter(name="order.paid").exists()
