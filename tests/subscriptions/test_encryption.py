from __future__ import annotations

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from subscriptions.models import Endpoint
from tests.factories import EndpointFactory

pytestmark = pytest.mark.django_db


def stored_secret(endpoint: Endpoint) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM subscriptions_endpoint WHERE id = %s", [endpoint.pk])
        return cursor.fetchone()[0]


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


def test_a_secret_under_a_missing_key_fails_loudly(settings):
    settings.WEBHOOKS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    endpoint = EndpointFactory()
    settings.WEBHOOKS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    with pytest.raises(ValueError, match="WEBHOOKS_ENCRYPTION_KEYS"):
        Endpoint.objects.get(pk=endpoint.pk)
