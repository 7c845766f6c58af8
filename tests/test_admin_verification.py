"""Ownership verification in the admin: the endpoint's state, a URL changed on its form, the
"new challenge" action, test sends that skip unverified endpoints, and the tenant's setting."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages

from deliveries.models import Delivery
from subscriptions.models import VERIFICATION_EVENT_TYPE, Endpoint, Tenant
from subscriptions.services import endpoint_create
from tests.factories import EndpointFactory, TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant(settings):
    settings.WEBHOOKS_VERIFY_ENDPOINTS = True
    return TenantFactory(slug="acme")


def challenges(endpoint: Endpoint) -> list[Delivery]:
    return list(
        Delivery.objects.filter(
            endpoint=endpoint, event__event_type__name=VERIFICATION_EVENT_TYPE
        ).order_by("id")
    )


def change(admin_client, endpoint: Endpoint, **fields):
    data = {"tenant": endpoint.tenant_id, "url": endpoint.url, "headers": "{}",
            "description": "", "payload_format": "json"} | fields  # fmt: skip
    return admin_client.post(f"/admin/subscriptions/endpoint/{endpoint.pk}/change/", data)


def test_an_endpoint_added_in_the_admin_is_sent_a_challenge(admin_client, tenant):
    response = admin_client.post(
        "/admin/subscriptions/endpoint/add/",
        {"tenant": tenant.pk, "url": "http://127.0.0.1:9/admin-added", "headers": "{}",
         "payload_format": "json", "created_at_0": "2026-11-29", "created_at_1": "10:00:00"},
    )  # fmt: skip

    assert response.status_code == 200, response.content  # the secret, shown once
    endpoint = Endpoint.objects.get(tenant=tenant)
    assert endpoint.verified_at is None
    assert len(challenges(endpoint)) == 1


def test_a_url_changed_on_the_form_resets_verification(admin_client, tenant):
    endpoint = EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/before")

    assert change(admin_client, endpoint, description="same url").status_code == 302
    assert Endpoint.objects.get(id=endpoint.id).verified_at is not None
    assert change(admin_client, endpoint, url="http://127.0.0.1:9/after").status_code == 302

    endpoint.refresh_from_db()
    assert endpoint.url == "http://127.0.0.1:9/after"
    assert endpoint.verified_at is None
    assert len(challenges(endpoint)) == 1


def test_the_change_page_and_the_list_show_the_state(admin_client, tenant):
    endpoint = endpoint_create(tenant=tenant, url="http://127.0.0.1:9/shown")

    listing = admin_client.get("/admin/subscriptions/endpoint/").content.decode()
    page = admin_client.get(f"/admin/subscriptions/endpoint/{endpoint.pk}/change/")

    assert "unverified" in listing
    assert "Verified at" in page.content.decode()


def test_the_action_sends_new_challenges_and_skips_verified_endpoints(admin_client, tenant):
    unverified = endpoint_create(tenant=tenant, url="http://127.0.0.1:9/unverified")
    verified = EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/verified")

    response = admin_client.post(
        "/admin/subscriptions/endpoint/",
        {"action": "verify", "_selected_action": [unverified.pk, verified.pk]},
    )

    assert response.status_code == 302
    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert message == "1 sent a new challenge; 1 skipped (verified already)."
    old, new = challenges(unverified)
    assert (old.status, new.status) == (Delivery.Status.FAILED, Delivery.Status.PENDING)
    assert challenges(verified) == []


def test_the_action_trusts_endpoints_once_verification_is_off(admin_client, tenant, settings):
    endpoint = endpoint_create(tenant=tenant, url="http://127.0.0.1:9/trusted")
    settings.WEBHOOKS_VERIFY_ENDPOINTS = False

    admin_client.post(
        "/admin/subscriptions/endpoint/", {"action": "verify", "_selected_action": [endpoint.pk]}
    )

    assert Endpoint.objects.get(id=endpoint.id).verified_at is not None


def test_a_test_send_skips_unverified_endpoints_and_says_so(admin_client, tenant, settings):
    settings.WEBHOOKS_TEST_WAIT_SECONDS = 0.0
    endpoint = endpoint_create(tenant=tenant, url="http://127.0.0.1:9/untested")

    response = admin_client.post(
        "/admin/subscriptions/endpoint/",
        {"action": "send_test_event", "_selected_action": [endpoint.pk]},
    )

    messages = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("1 unverified endpoints skipped" in m for m in messages)
    assert challenges(endpoint) == list(Delivery.objects.filter(endpoint=endpoint))


@pytest.mark.parametrize(
    ("choice", "stored"), [("unknown", None), ("true", True), ("false", False)]
)
def test_the_tenant_form_sets_whether_its_endpoints_are_verified(admin_client, choice, stored):
    tenant = TenantFactory(slug="globex")

    response = admin_client.post(
        f"/admin/subscriptions/tenant/{tenant.pk}/change/",
        {"slug": "globex", "name": "Globex", "is_active": "on", "delivery_weight": "1",
         "verify_endpoints": choice, "created_at_0": "2026-11-29", "created_at_1": "10:00:00",
         "api_keys-TOTAL_FORMS": "0", "api_keys-INITIAL_FORMS": "0"},
    )  # fmt: skip

    assert response.status_code == 302, response.content
    assert Tenant.objects.get(id=tenant.id).verify_endpoints is stored
