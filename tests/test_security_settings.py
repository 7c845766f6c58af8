from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event

ROOT = Path(__file__).resolve().parent.parent


def test_django_deployment_checklist_passes_with_production_settings(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "WEBHOOKS_"))},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECURE_HTTPS": "true",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(60),
        "ALLOWED_HOSTS": "hooks.example.com",
        "HOOKLINE_VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


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
