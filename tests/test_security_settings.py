from __future__ import annotations

import io
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from subscriptions.encryption import secret_key_derived_key
from subscriptions.models import Endpoint
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event

ROOT = Path(__file__).resolve().parent.parent


def production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "WEBHOOKS_"))},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECURE_HTTPS": "true",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(60),
        "ALLOWED_HOSTS": "hooks.example.com",
        "HOOKLINE_VAR_DIR": str(tmp_path),
        "WEBHOOKS_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        **overrides,
    }


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_django_deployment_checklist_passes_with_production_settings(tmp_path):
    result = check_deploy(production_env(tmp_path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_deploy_check_warns_when_secrets_are_encrypted_with_a_key_derived_from_secret_key(
    tmp_path,
):
    result = check_deploy(production_env(tmp_path, WEBHOOKS_ENCRYPTION_KEYS=""))

    assert result.returncode != 0
    assert "hookline.W001" in result.stderr
    assert "WEBHOOKS_ENCRYPTION_KEYS is not set" in result.stderr


def test_the_encryption_key_warning_is_for_deployments_only(tmp_path):
    env = production_env(tmp_path, WEBHOOKS_ENCRYPTION_KEYS="")
    plain_check = subprocess.run(
        [sys.executable, "manage.py", "check", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    in_debug = check_deploy({**env, "DEBUG": "true"})

    assert plain_check.returncode == 0, plain_check.stderr
    assert "hookline.W001" not in plain_check.stderr + in_debug.stderr


@pytest.mark.django_db
def test_secrets_move_from_the_secret_key_derived_key_to_a_key_of_their_own(settings):
    # The procedure docs/security.md gives: new key first, the derived one after it,
    # reencrypt_secrets, then the derived key goes.
    settings.WEBHOOKS_ENCRYPTION_KEYS = []
    endpoint = EndpointFactory(url="http://127.0.0.1:9/hook")
    new_key = Fernet.generate_key().decode()

    settings.WEBHOOKS_ENCRYPTION_KEYS = [new_key, secret_key_derived_key()]
    call_command("reencrypt_secrets", stdout=io.StringIO())
    settings.WEBHOOKS_ENCRYPTION_KEYS = [new_key]

    assert Endpoint.objects.get(pk=endpoint.pk).secret == endpoint.secret
    settings.SECRET_KEY = "a leaked settings file no longer decrypts anything"
    assert Endpoint.objects.get(pk=endpoint.pk).secret == endpoint.secret


@pytest.mark.django_db
def test_dashboard_pages_send_a_strict_csp_and_hold_no_inline_script(admin_client):
    tenant = TenantFactory()
    EventTypeFactory(name="order.paid")
    endpoint = EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/hook")
    delivery = send_event(tenant, "order.paid", {}).deliveries.get()
    pages = ["/dashboard/", "/dashboard/endpoints/", f"/dashboard/endpoints/{endpoint.pk}/",
             "/dashboard/deliveries/", f"/dashboard/deliveries/{delivery.pk}/",
             "/dashboard/dead-letters/", f"/dashboard/inbox/?tenant={tenant.slug}"]  # fmt: skip
    for path in pages:
        response = admin_client.get(path)
        html = response.content.decode()
        assert response.status_code == 200, path
        assert "script-src 'self'" in response["Content-Security-Policy"], path
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), f"inline script on {path}"
        assert not re.search(r"\son[a-z]+=", html), f"inline event handler on {path}"
