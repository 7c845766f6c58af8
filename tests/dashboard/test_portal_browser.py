"""Portal links in a real browser: opened once, the token gone from the URL bar, revocable."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from subscriptions.services import api_key_create
from tests.factories import EndpointFactory, TenantFactory

pytestmark = [pytest.mark.services]


@pytest.fixture
def acme(transactional_db):
    tenant = TenantFactory(slug="acme", name="Acme")
    EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/acme-hook")
    return tenant


@pytest.fixture
def api(acme) -> APIClient:
    _, key = api_key_create(tenant=acme)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def issue(api: APIClient) -> tuple[int, str]:
    """A new link's id and its path (the API names the test server's host, not the live one)."""
    response = api.post("/api/v1/portal-links/", {}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    return body["id"], body["url"].split("testserver", 1)[1]


def test_link_opens_the_dashboard_once_and_after_ending_the_session_says_it_was_used(page, api):
    _, link = issue(api)
    token = link.rstrip("/").rsplit("/", 1)[-1]

    page.goto(link)

    assert page.url.endswith("/dashboard/")
    assert token not in page.url
    assert "Acme" in page.inner_text("[data-testid=portal-banner]")
    page.click("button:has-text('End session')")
    page.wait_for_url("**/accounts/login/")

    again = page.goto(link)

    assert again.status == 410
    assert "This link was already used" in page.inner_text("[data-testid=portal-refused]")
    assert page.goto("/dashboard/endpoints/").url.split("?", 1)[0].endswith("/accounts/login/")


def test_revoking_a_link_ends_the_session_open_in_the_browser(page, api):
    link_id, link = issue(api)
    page.goto(link)
    page.goto("/dashboard/endpoints/")
    assert "acme-hook" in page.content()

    assert api.delete(f"/api/v1/portal-links/{link_id}/").status_code == 204
    page.reload()

    assert "This session has ended" in page.inner_text("[data-testid=portal-refused]")
    assert "acme-hook" not in page.content()
    page.goto("/dashboard/endpoints/")
    assert "acme-hook" not in page.content()
