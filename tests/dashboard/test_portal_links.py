"""Portal links: the host application hands its customer a short-lived, single-use dashboard URL."""

from __future__ import annotations

import hashlib
import threading
from datetime import timedelta

import pytest
import time_machine
import urllib3
from django.utils import timezone
from rest_framework.test import APIClient

from dashboard.models import PortalLink
from deliveries.batch import deliver_due_batch
from deliveries.models import Delivery
from subscriptions.services import api_key_create
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme():
    EventTypeFactory(name="order.paid")
    tenant = TenantFactory(slug="acme", name="Acme")
    EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/acme-hook")
    return tenant


@pytest.fixture
def globex():
    tenant = TenantFactory(slug="globex", name="Globex")
    EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/globex-hook")
    return tenant


def api_for(tenant) -> APIClient:
    _, key = api_key_create(tenant=tenant)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return api


def portal_link(tenant, api: APIClient | None = None, **body) -> dict:
    response = (api or api_for(tenant)).post("/api/v1/portal-links/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def path_of(url: str) -> str:
    return url.split("testserver", 1)[1]


def test_portal_link_opens_the_dashboard_for_that_tenant_alone(client, acme, globex):
    link = portal_link(acme)

    opened = client.get(path_of(link["url"]), follow=True)

    assert opened.status_code == 200
    assert b"Viewing <strong>Acme</strong>" in opened.content
    assert b"read-only" in opened.content
    endpoints = client.get("/dashboard/endpoints/").content
    assert b"acme-hook" in endpoints
    assert b"globex-hook" not in endpoints
    assert client.get("/dashboard/endpoints/?tenant=globex").content.count(b"globex-hook") == 0


def test_read_only_portal_session_shows_no_replay_and_may_not_replay(client, acme, settings):
    settings.WEBHOOKS_RETRY_SCHEDULE = ()
    event = send_event(acme, "order.paid", {})
    deliver_due_batch(limit=10)
    delivery = Delivery.objects.get(event=event)
    client.get(path_of(portal_link(acme)["url"]))

    page = client.get(f"/dashboard/deliveries/{delivery.pk}/")

    assert page.status_code == 200
    html = page.content.decode()
    assert f"/dashboard/deliveries/{delivery.pk}/replay/" not in html, html[
        html.find("Replay") - 200 :
    ][:400]
    assert client.post(f"/dashboard/deliveries/{delivery.pk}/replay/").status_code == 403
    assert Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.FAILED


def test_portal_link_with_replay_capability_may_replay(client, acme, settings):
    settings.WEBHOOKS_RETRY_SCHEDULE = ()
    event = send_event(acme, "order.paid", {})
    deliver_due_batch(limit=10)
    delivery = Delivery.objects.get(event=event)
    link = portal_link(acme, capabilities=["replay"], expires_in=600)
    assert link["capabilities"] == ["replay", "view"]
    client.get(path_of(link["url"]))

    response = client.post(f"/dashboard/deliveries/{delivery.pk}/replay/")

    assert response.status_code == 302
    assert Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.PENDING


def test_tampered_portal_link_is_refused(client, acme, globex):
    url = path_of(portal_link(acme)["url"])
    tampered = url[:-6] + ("AAAAA/" if not url.endswith("AAAAA/") else "BBBBB/")

    response = client.get(tampered)

    assert response.status_code == 403
    assert b"This link is invalid." in response.content
    assert client.get("/dashboard/").status_code == 302  # still no session


def test_expired_portal_link_is_refused_and_an_expired_session_ends(client, acme):
    link = portal_link(acme, expires_in=60)
    client.get(path_of(link["url"]))
    assert client.get("/dashboard/").status_code == 200

    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        assert client.get(path_of(link["url"])).status_code == 403
        assert client.get("/dashboard/").status_code == 302


@pytest.mark.parametrize(
    "body",
    [
        {"capabilities": ["root"]},
        {"expires_in": 5},
        {"expires_in": 10**7},
        {"capabilities": "view"},
    ],
)
def test_portal_link_request_is_validated(acme, body):
    _, key = api_key_create(tenant=acme)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.post("/api/v1/portal-links/", body, format="json").status_code == 400


def test_portal_links_need_an_api_key(acme):
    assert APIClient().post("/api/v1/portal-links/", {}, format="json").status_code == 401


def log_out(client) -> None:
    assert client.post("/accounts/logout/").status_code == 302


def test_portal_link_opens_once_and_a_second_open_says_it_was_already_used(client, acme):
    url = path_of(portal_link(acme)["url"])
    assert client.get(url).status_code == 302
    assert client.get("/dashboard/").status_code == 200
    log_out(client)

    again = client.get(url)

    assert again.status_code == 410
    assert b"This link was already used" in again.content
    assert b"dashboard.css" in again.content  # the dashboard's own page, not a bare error
    assert client.get("/dashboard/").status_code == 302  # no new session


def test_opening_a_link_redirects_at_once_to_a_dashboard_url_without_the_token(client, acme):
    url = path_of(portal_link(acme)["url"])
    token = url.rstrip("/").rsplit("/", 1)[-1]

    opened = client.get(url)

    assert opened.status_code == 302
    assert opened["Location"] == "/dashboard/"
    assert token not in opened["Location"]
    assert opened["Cache-Control"] == "no-store"
    assert opened["Referrer-Policy"] == "no-referrer"


def test_a_link_checker_sending_head_does_not_use_the_link_up(client, acme):
    url = path_of(portal_link(acme)["url"])

    assert client.head(url).status_code == 405

    assert client.get(url).status_code == 302
    assert client.get("/dashboard/").status_code == 200


def test_only_a_hash_of_the_token_is_stored(acme):
    link = portal_link(acme)
    token = link["url"].rstrip("/").rsplit("/", 1)[-1]

    row = PortalLink.objects.values().get(id=link["id"])

    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert not any(token in str(value) for value in row.values())
    assert len(token) >= 43  # 256 random bits, url-safe base64


def test_portal_links_are_listed_newest_first_with_when_and_from_where_each_was_opened(
    client, acme, globex
):
    api = api_for(acme)
    first, second = portal_link(acme, api), portal_link(acme, api, capabilities=["replay"])
    portal_link(globex)
    client.get(path_of(first["url"]), REMOTE_ADDR="203.0.113.9")

    listed = api.get("/api/v1/portal-links/")

    assert listed.status_code == 200
    rows = listed.json()["results"]
    assert [row["id"] for row in rows] == [second["id"], first["id"]]
    opened, unused = rows[1], rows[0]
    assert opened["state"] == "used"
    assert opened["opened_from"] == "203.0.113.9"
    assert opened["opened_at"] is not None
    assert unused["state"] == "unused"
    assert unused["opened_at"] is None
    assert unused["capabilities"] == ["replay", "view"]
    key_prefix = PortalLink.objects.get(id=first["id"]).issued_by.prefix
    assert opened["issued_by"] == key_prefix
    assert "url" not in opened
    assert "token_hash" not in opened
    assert api.get(f"/api/v1/portal-links/{first['id']}/").json()["state"] == "used"


def test_revoking_a_link_through_the_api_ends_the_session_it_opened(client, acme):
    api = api_for(acme)
    link = portal_link(acme, api, capabilities=["replay"])
    client.get(path_of(link["url"]))
    assert client.get("/dashboard/").status_code == 200

    revoked = api.delete(f"/api/v1/portal-links/{link['id']}/")

    assert revoked.status_code == 204
    ended = client.get("/dashboard/deliveries/")
    assert ended.status_code == 403
    assert b"This session has ended: its link was revoked." in ended.content
    assert client.get("/dashboard/").status_code == 302  # to sign in: the session is gone
    assert api.get(f"/api/v1/portal-links/{link['id']}/").json()["state"] == "revoked"


def test_a_revoked_link_that_was_never_opened_is_refused(client, acme):
    api = api_for(acme)
    link = portal_link(acme, api)
    assert api.delete(f"/api/v1/portal-links/{link['id']}/").status_code == 204
    assert api.delete(f"/api/v1/portal-links/{link['id']}/").status_code == 204  # idempotent

    refused = client.get(path_of(link["url"]))

    assert refused.status_code == 410
    assert b"This link was revoked." in refused.content
    assert client.get("/dashboard/").status_code == 302


def test_another_tenants_link_can_be_neither_seen_nor_revoked(client, acme, globex):
    link = portal_link(acme)
    client.get(path_of(link["url"]))
    theirs = api_for(globex)

    for response in (
        theirs.delete(f"/api/v1/portal-links/{link['id']}/"),
        theirs.get(f"/api/v1/portal-links/{link['id']}/"),
    ):
        assert response.status_code == 404
        assert response.json()["detail"]
    assert theirs.get("/api/v1/portal-links/").json()["results"] == []
    assert client.get("/dashboard/").status_code == 200  # the acme session goes on


def test_a_session_opened_by_a_signed_link_of_the_earlier_version_ends(client, acme):
    # What a stateless signed link put in the session before links became rows.
    session = client.session
    session["dashboard_portal"] = {"t": acme.id, "c": ["view"], "e": 4102444800.0}
    session.save()

    assert client.get("/dashboard/").status_code == 302


def test_operator_revokes_every_portal_link_of_a_tenant_from_the_admin(
    admin_client, client, acme, globex
):
    opened, unopened = portal_link(acme), portal_link(acme)
    client.get(path_of(opened["url"]))
    theirs = portal_link(globex)

    response = admin_client.post(
        "/admin/subscriptions/tenant/",
        {"action": "revoke_portal_links", "_selected_action": [acme.pk]},
        follow=True,
    )

    assert b"Revoked 2 portal links" in response.content
    assert client.get("/dashboard/").status_code == 403
    assert client.get(path_of(unopened["url"])).status_code == 410
    assert PortalLink.objects.get(id=theirs["id"]).revoked_at is None


def test_portal_link_admin_lists_links_read_only_and_revokes_the_selected(
    admin_client, client, acme
):
    link = portal_link(acme, capabilities=["replay"])
    client.get(path_of(link["url"]), REMOTE_ADDR="198.51.100.7")

    listing = admin_client.get("/admin/dashboard/portallink/")

    assert listing.status_code == 200
    assert b"198.51.100.7" in listing.content
    assert admin_client.get("/admin/dashboard/portallink/add/").status_code == 403
    change = admin_client.get(f"/admin/dashboard/portallink/{link['id']}/change/")
    assert b'name="_save"' not in change.content
    assert b"token_hash" not in change.content
    admin_client.post(
        "/admin/dashboard/portallink/",
        {"action": "revoke", "_selected_action": [link["id"]]},
    )
    assert client.get("/dashboard/").status_code == 403


@pytest.mark.services
def test_concurrent_opens_of_one_link_start_exactly_one_session(
    transactional_db, live_server, acme
):
    url = live_server.url + path_of(portal_link(acme)["url"])
    openers = 8
    start = threading.Barrier(openers)
    statuses: list[int] = []

    def open_link() -> None:
        with urllib3.PoolManager() as http:
            start.wait()
            statuses.append(http.request("GET", url, redirect=False, timeout=10).status)

    threads = [threading.Thread(target=open_link) for _ in range(openers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [302] + [410] * (openers - 1)
