"""Every blocked range and odd spelling is refused the same way through the admin form, the API
and the transport at connect time, with a clear message and nothing stored or sent."""

from __future__ import annotations

import ipaddress

import pytest
from rest_framework.test import APIClient

from deliveries import transport
from subscriptions.models import Endpoint
from subscriptions.services import api_key_create
from tests.factories import TenantFactory
from tests.subscriptions.test_addresses import BLOCKED_SAMPLES

pytestmark = pytest.mark.django_db

SPELLINGS = ["127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1", "[::1]", "[::ffff:127.0.0.1]"]


def as_host(address: str) -> str:
    return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address


URLS = [
    f"http://{as_host(sample)}/hook" for samples in BLOCKED_SAMPLES.values() for sample in samples
]
URLS += [f"http://{spelling}/hook" for spelling in SPELLINGS]


@pytest.fixture(autouse=True)
def no_allowlist(settings):
    settings.WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST = ()


@pytest.mark.parametrize("url", URLS)
def test_blocked_target_is_refused_by_the_admin_the_api_and_the_transport(admin_client, url):
    tenant = TenantFactory()
    _, key = api_key_create(tenant=tenant)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")

    form = admin_client.post(
        "/admin/subscriptions/endpoint/add/",
        {"tenant": tenant.pk, "url": url, "is_active": "on", "headers": "{}",
         "created_at_0": "2026-11-29", "created_at_1": "10:00:00"},
    )  # fmt: skip
    response = api.post("/api/v1/endpoints/", {"url": url}, format="json")
    sent = transport.post(url, b"{}", {})

    assert form.status_code == 200
    assert "not allowed" in form.content.decode() or "valid URL" in form.content.decode()
    assert response.status_code == 400
    assert response.json()["fields"]["url"]
    assert sent.error_kind == "blocked", sent.error_message
    assert not Endpoint.objects.exists()
