from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from subscriptions.models import Endpoint, generate_signing_secret
from subscriptions.services import endpoint_rotate_secret
from tests.factories import EndpointFactory

pytestmark = pytest.mark.django_db


TOKEN = "Bearer sk_live_9f8e7d6c5b4a3210abcd"


def stored_secret(endpoint: Endpoint) -> str:
    return stored_row(endpoint)["secret"]


def stored_row(endpoint: Endpoint) -> dict[str, str]:
    """The endpoint's row as the database holds it, every column as text."""
    table = connection.ops.quote_name(Endpoint._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [endpoint.pk])
        names = [column[0] for column in cursor.description]  # DB-API: the name comes first
        return {name: str(value) for name, value in zip(names, cursor.fetchone(), strict=True)}


def test_secret_is_stored_encrypted_and_read_back_in_clear(settings):
    settings.WEBHOOKS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    endpoint = EndpointFactory()

    assert endpoint.secret.startswith("whsec_")
    assert "whsec_" not in stored_secret(endpoint)
    assert Endpoint.objects.get(pk=endpoint.pk).secret == endpoint.secret


def test_keys_rotate_without_losing_a_secret(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.WEBHOOKS_ENCRYPTION_KEYS = [old]
    endpoint = EndpointFactory()
    before = stored_secret(endpoint)

    settings.WEBHOOKS_ENCRYPTION_KEYS = [new, old]
    out = io.StringIO()
    call_command("reencrypt_secrets", stdout=out)
    settings.WEBHOOKS_ENCRYPTION_KEYS = [new]

    assert "Re-encrypted the secrets of 1 endpoints" in out.getvalue()
    assert stored_secret(endpoint) != before
    assert Endpoint.objects.get(pk=endpoint.pk).secret == endpoint.secret


def test_header_values_and_replaced_secrets_are_stored_encrypted(settings):
    settings.WEBHOOKS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    endpoint = EndpointFactory(headers={"Authorization": TOKEN, "X-Api-Token": "tok_live_1234"})
    first = endpoint.secret
    second = endpoint_rotate_secret(endpoint=endpoint).secret
    endpoint_rotate_secret(endpoint=endpoint)

    row = " ".join(stored_row(endpoint).values())

    for plain in (TOKEN, "sk_live", "tok_live_1234", first, second, first.removeprefix("whsec_")):
        assert plain not in row
    assert "X-Api-Token" not in row  # the names are encrypted with the values
    again = Endpoint.objects.get(pk=endpoint.pk)
    assert again.headers == {"Authorization": TOKEN, "X-Api-Token": "tok_live_1234"}
    assert again.signing_secrets()[1:] == [second, first]


def test_reencrypt_secrets_covers_replaced_secrets_and_headers(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.WEBHOOKS_ENCRYPTION_KEYS = [old]
    endpoint = EndpointFactory(headers={"Authorization": TOKEN})
    replaced = endpoint.secret
    endpoint_rotate_secret(endpoint=endpoint)
    before = stored_row(endpoint)

    settings.WEBHOOKS_ENCRYPTION_KEYS = [new, old]
    call_command("reencrypt_secrets", stdout=io.StringIO())
    settings.WEBHOOKS_ENCRYPTION_KEYS = [new]  # the old key is gone: everything must still read

    after = stored_row(endpoint)
    assert [after[name] != before[name] for name in ("secret", "previous_secrets", "headers")] == [
        True
    ] * 3

    again = Endpoint.objects.get(pk=endpoint.pk)
    assert again.headers == {"Authorization": TOKEN}
    assert again.signing_secrets() == [endpoint.secret, replaced]


@pytest.fixture
def latest_schema_afterwards():
    """Every migration applied again after the test, even one that failed half-way: otherwise
    each test after it would fail on the old schema instead."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("latest_schema_afterwards")
def test_migration_moves_the_previous_secret_into_the_list_and_encrypts_headers():
    before, after = (
        ("subscriptions", "0007_endpoint_payload_format"),
        (
            "subscriptions",
            "0008_secrets_and_header_encryption",
        ),
    )
    executor = MigrationExecutor(connection)
    executor.migrate([before])
    old_apps = executor.loader.project_state([before]).apps
    Tenant = old_apps.get_model("subscriptions", "Tenant")
    OldEndpoint = old_apps.get_model("subscriptions", "Endpoint")
    tenant = Tenant.objects.create(slug="legacy", name="Legacy")
    until = timezone.now() + timedelta(hours=5)
    current, previous = generate_signing_secret(), generate_signing_secret()
    rotating = OldEndpoint.objects.create(
        tenant=tenant, url="http://127.0.0.1:9/a", secret=current, previous_secret=previous,
        previous_secret_expires_at=until, headers={"Authorization": TOKEN},
    )  # fmt: skip
    settled = OldEndpoint.objects.create(
        tenant=tenant, url="http://127.0.0.1:9/b", secret=generate_signing_secret(),
        previous_secret=generate_signing_secret(),
        previous_secret_expires_at=timezone.now() - timedelta(hours=1),
    )  # fmt: skip
    assert TOKEN in json.dumps(stored_row(rotating))

    executor = MigrationExecutor(connection)
    executor.migrate([after])

    # Only the columns that exist at that migration: later ones add more.
    at_that_migration = Endpoint.objects.only("secret", "previous_secrets", "headers")
    migrated = at_that_migration.get(pk=rotating.pk)
    assert migrated.signing_secrets() == [current, previous]
    assert [p.expires_at for p in migrated.previous_secrets] == [until]
    assert migrated.headers == {"Authorization": TOKEN}
    assert TOKEN not in json.dumps(stored_row(rotating))
    assert at_that_migration.get(pk=settled.pk).previous_secrets == []  # it had stopped signing

    executor = MigrationExecutor(connection)
    executor.migrate([before])  # and back: the latest replaced secret, headers in clear
    reverted = old_apps.get_model("subscriptions", "Endpoint").objects.get(pk=rotating.pk)
    assert (reverted.previous_secret, reverted.previous_secret_expires_at) == (previous, until)
    assert reverted.headers == {"Authorization": TOKEN}


def test_a_secret_under_a_missing_key_fails_loudly(settings):
    settings.WEBHOOKS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    endpoint = EndpointFactory()
    settings.WEBHOOKS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    with pytest.raises(ValueError, match="WEBHOOKS_ENCRYPTION_KEYS"):
        Endpoint.objects.get(pk=endpoint.pk)


def test_an_endpoint_with_replaced_secrets_validates_and_survives_dumpdata_and_loaddata(tmp_path):
    endpoint = EndpointFactory(headers={"Authorization": TOKEN})
    endpoint_rotate_secret(endpoint=endpoint)
    endpoint.refresh_from_db()
    endpoint.full_clean()
    expected = (endpoint.secret, endpoint.previous_secrets, endpoint.headers)
    dump = tmp_path / "endpoints.json"

    call_command("dumpdata", "subscriptions.endpoint", output=str(dump))
    Endpoint.objects.all().delete()
    call_command("loaddata", str(dump), stdout=io.StringIO())

    again = Endpoint.objects.get(pk=endpoint.pk)
    assert (again.secret, again.previous_secrets, again.headers) == expected
    assert expected[1][0].secret not in dump.read_text()
