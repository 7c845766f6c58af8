"""The endpoint page shows whether the endpoint is verified, and sends a new challenge; only to
sessions that may manage endpoints, and only for the viewer's own tenant."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from deliveries.batch import deliver_due_batch
from deliveries.models import Delivery
from subscriptions.models import VERIFICATION_EVENT_TYPE, Endpoint
from subscriptions.services import api_key_create, endpoint_create
from tests.dashboard.conftest import sign_in
from tests.factories import EndpointFactory, TenantFactory

PASSWORD = "secret-pass-123"


def challenges(endpoint: Endpoint) -> int:
    return Delivery.objects.filter(
        endpoint=endpoint, event__event_type__name=VERIFICATION_EVENT_TYPE
    ).count()


def member_of(tenant, username: str = "ana"):
    user = get_user_model().objects.create_user(username, password=PASSWORD)
    tenant.members.add(user)
    return user


@pytest.fixture
def acme(db, settings):
    settings.WEBHOOKS_VERIFY_ENDPOINTS = True
    return TenantFactory(slug="acme", name="Acme")


@pytest.mark.django_db
def test_an_unverified_endpoint_page_says_so_and_offers_a_new_challenge(client, acme):
    endpoint = endpoint_create(tenant=acme, url="http://127.0.0.1:9/unverified")
    client.force_login(member_of(acme))

    html = client.get(f"/dashboard/endpoints/{endpoint.pk}/").content.decode()

    assert "Unverified" in html
    assert "Send a new challenge" in html
    assert 'class="test-form"' not in html  # no test events until it is verified
    listing = client.get("/dashboard/endpoints/").content.decode()
    assert "Unverified" in listing


@pytest.mark.django_db
def test_a_verified_endpoint_page_says_since_when(client, acme):
    endpoint = EndpointFactory(tenant=acme, url="http://127.0.0.1:9/verified")
    client.force_login(member_of(acme))

    html = client.get(f"/dashboard/endpoints/{endpoint.pk}/").content.decode()

    assert "Verified <time" in html
    assert "Send a new challenge" not in html


@pytest.mark.django_db
def test_the_button_sends_a_new_challenge(client, acme):
    endpoint = endpoint_create(tenant=acme, url="http://127.0.0.1:9/again")
    client.force_login(member_of(acme))

    response = client.post(f"/dashboard/endpoints/{endpoint.pk}/verify/", follow=True)

    assert "New challenge sent" in response.content.decode()
    assert challenges(endpoint) == 2


@pytest.mark.django_db
def test_a_verified_endpoint_is_left_as_it_is(client, acme):
    endpoint = EndpointFactory(tenant=acme, url="http://127.0.0.1:9/verified")
    client.force_login(member_of(acme))

    response = client.post(f"/dashboard/endpoints/{endpoint.pk}/verify/", follow=True)

    assert "verified already" in response.content.decode()
    assert challenges(endpoint) == 0


@pytest.mark.django_db
def test_another_tenants_endpoint_is_404_and_gets_no_challenge(client, acme):
    theirs = endpoint_create(tenant=TenantFactory(slug="globex"), url="http://127.0.0.1:9/theirs")
    client.force_login(member_of(acme))

    assert client.post(f"/dashboard/endpoints/{theirs.pk}/verify/").status_code == 404
    assert client.post(f"/dashboard/endpoints/{'9' * 30}/verify/").status_code == 404
    assert challenges(theirs) == 1


@pytest.mark.django_db
def test_a_read_only_portal_session_sees_the_state_but_cannot_send_a_challenge(client, acme):
    endpoint = endpoint_create(tenant=acme, url="http://127.0.0.1:9/portal")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=acme)[1]}")
    link = api.post("/api/v1/portal-links/", {}, format="json").json()["url"]
    client.get(link[link.index("/dashboard/") :])

    html = client.get(f"/dashboard/endpoints/{endpoint.pk}/").content.decode()
    assert "Unverified" in html
    assert "Send a new challenge" not in html
    assert client.post(f"/dashboard/endpoints/{endpoint.pk}/verify/").status_code == 403
    assert challenges(endpoint) == 1


@pytest.mark.services
def test_a_member_sends_a_new_challenge_in_a_browser_and_sees_the_endpoint_verified(
    page, receiver, acme
):
    endpoint = endpoint_create(tenant=acme, url=receiver.url("/browser"))
    deliver_due_batch(limit=10)  # the first challenge: not echoed, the receiver was not ready
    member_of(acme)
    sign_in(page, "ana", PASSWORD)

    page.goto(f"/dashboard/endpoints/{endpoint.pk}/")
    assert page.inner_text("[data-testid=verification-state]") == "Unverified"
    receiver.reply_with(
        "/browser",
        lambda received: json.dumps(
            {"challenge": json.loads(received.body)["data"]["challenge"]}
        ).encode(),
    )
    page.click("text=Send a new challenge")
    page.wait_for_selector("text=New challenge sent")
    deliver_due_batch(limit=10)
    page.reload()

    assert page.inner_text("[data-testid=verification-state]").startswith("Verified")
    assert page.locator("[data-testid=unverified-banner]").count() == 0
    assert page.locator("form.test-form").count() == 1
