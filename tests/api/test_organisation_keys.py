"""Organisation keys: the host's own code manages tenants, their API keys and portal links."""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from dashboard.models import PortalLink
from subscriptions.models import ApiKey, OrganisationKey, Tenant
from subscriptions.services import hash_api_key, organisation_key_create
from tests.api.conftest import assert_error_body, client_for
from tests.factories import EndpointFactory, EventTypeFactory
from webhooks import send_event
from webhooks.errors import TenantInactiveError

pytestmark = pytest.mark.django_db


@pytest.fixture
def org():
    return client_for(organisation_key_create(name="billing")[1])


def created_tenant(org, **body) -> dict:
    response = org.post("/api/v1/tenants/", {"slug": "acme", **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_createorgkey_prints_a_working_organisation_key_as_its_last_line():
    out = io.StringIO()
    call_command("createorgkey", "billing service", stdout=out)
    key = out.getvalue().splitlines()[-1]

    stored = OrganisationKey.objects.get(name="billing service")
    assert key.startswith("hlo_")
    assert key.startswith(stored.prefix)
    assert stored.key_hash == hash_api_key(key)
    assert client_for(key).get("/api/v1/tenants/").status_code == 200


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, "bad\x00name"])
def test_createorgkey_refuses_a_bad_name(name):
    with pytest.raises(CommandError, match="name of 1 to 200"):
        call_command("createorgkey", name, stdout=io.StringIO())
    assert not OrganisationKey.objects.exists()


def test_an_organisation_key_creates_a_tenant_with_its_limits(org):
    body = created_tenant(org, name="Acme Inc.", max_events_per_second=50, retention_days=90)

    assert body["slug"] == "acme"
    assert body["name"] == "Acme Inc."
    assert body["is_active"] is True
    tenant = Tenant.objects.get(slug="acme")
    assert (tenant.max_events_per_second, tenant.retention_days) == (50, 90)
    assert (tenant.delivery_weight, tenant.verify_endpoints) == (1, None)


def test_a_tenants_name_defaults_to_its_slug(org):
    assert created_tenant(org)["name"] == "acme"


def test_tenants_are_listed_oldest_first_a_page_at_a_time(org):
    for slug in ["c-tenant", "a-tenant", "b-tenant"]:
        created_tenant(org, slug=slug)

    first = org.get("/api/v1/tenants/", {"limit": 2}).json()
    second = org.get("/api/v1/tenants/", {"limit": 2, "cursor": first["next_cursor"]}).json()

    assert [t["slug"] for t in first["results"]] == ["c-tenant", "a-tenant"]
    assert [t["slug"] for t in second["results"]] == ["b-tenant"]
    assert second["next"] is None


def test_an_organisation_key_updates_a_tenants_settings_but_never_its_slug(org):
    created_tenant(org)

    response = org.patch(
        "/api/v1/tenants/acme/",
        {"slug": "renamed", "name": "Acme", "delivery_weight": 5, "max_events_per_second": 10,
         "retention_days": 0, "verify_endpoints": True},
        format="json",
    )  # fmt: skip

    assert response.status_code == 200, response.content
    tenant = Tenant.objects.get(slug="acme")
    assert (tenant.name, tenant.delivery_weight, tenant.verify_endpoints) == ("Acme", 5, True)
    assert (tenant.max_events_per_second, tenant.retention_days) == (10, 0)
    cleared = org.patch(
        "/api/v1/tenants/acme/",
        {"max_events_per_second": None, "retention_days": None},
        format="json",
    )
    assert cleared.status_code == 200
    tenant.refresh_from_db()
    assert (tenant.max_events_per_second, tenant.retention_days) == (None, None)


def test_delete_deactivates_a_tenant_and_deletes_nothing(org, client):
    EventTypeFactory(name="order.paid")
    created_tenant(org)
    tenant = Tenant.objects.get(slug="acme")
    EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/acme")
    key = org.post("/api/v1/tenants/acme/api-keys/", {}, format="json").json()["key"]
    opened_link = org.post("/api/v1/tenants/acme/portal-links/", {}, format="json").json()
    unopened_link = org.post("/api/v1/tenants/acme/portal-links/", {}, format="json").json()
    client.get(urlsplit(opened_link["url"]).path)
    assert client.get("/dashboard/endpoints/").status_code == 200

    assert org.delete("/api/v1/tenants/acme/").status_code == 204

    assert org.get("/api/v1/tenants/acme/").json()["is_active"] is False
    assert client_for(key).get("/api/v1/endpoints/").status_code == 401
    ended = client.get("/dashboard/endpoints/")
    assert ended.status_code == 403
    assert b"the tenant was deactivated" in ended.content
    refused = client.get(urlsplit(unopened_link["url"]).path)
    assert refused.status_code == 403
    assert b"the tenant was deactivated" in refused.content
    with pytest.raises(TenantInactiveError, match="deactivated"):
        send_event("acme", "order.paid", {"order_id": "1"})
    tenant.refresh_from_db()
    with pytest.raises(TenantInactiveError, match="deactivated"):
        send_event(tenant, "order.paid", {"order_id": "1"})
    assert tenant.endpoints.count() == 1
    assert ApiKey.objects.filter(tenant=tenant, revoked_at__isnull=True).count() == 1


def test_activating_a_tenant_again_brings_its_keys_back(org):
    created_tenant(org)
    key = org.post("/api/v1/tenants/acme/api-keys/", {}, format="json").json()["key"]
    org.delete("/api/v1/tenants/acme/")

    org.patch("/api/v1/tenants/acme/", {"is_active": True}, format="json")

    assert client_for(key).get("/api/v1/endpoints/").status_code == 200


def test_a_tenants_new_api_key_is_shown_once_and_acts_for_that_tenant(org):
    created_tenant(org)
    created_tenant(org, slug="globex")
    EndpointFactory(tenant=Tenant.objects.get(slug="globex"), url="http://127.0.0.1:9/globex")

    response = org.post("/api/v1/tenants/acme/api-keys/", {"name": "shop"}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["key"].startswith(body["prefix"])
    assert body["name"] == "shop"
    stored = ApiKey.objects.get(id=body["id"])
    assert stored.tenant.slug == "acme"
    assert stored.key_hash == hash_api_key(body["key"])
    assert client_for(body["key"]).get("/api/v1/endpoints/").json()["results"] == []
    listed = org.get("/api/v1/tenants/acme/api-keys/").json()["results"]
    assert [(k["id"], k["prefix"]) for k in listed] == [(body["id"], body["prefix"])]
    assert "key" not in listed[0]


def test_a_revoked_api_key_is_refused(org):
    created_tenant(org)
    body = org.post("/api/v1/tenants/acme/api-keys/", {}, format="json").json()

    assert org.delete(f"/api/v1/tenants/acme/api-keys/{body['id']}/").status_code == 204

    assert client_for(body["key"]).get("/api/v1/endpoints/").status_code == 401
    revoked = org.get(f"/api/v1/tenants/acme/api-keys/{body['id']}/").json()
    assert revoked["revoked_at"] is not None


def test_an_api_key_is_reached_only_under_its_own_tenant(org):
    created_tenant(org)
    created_tenant(org, slug="globex")
    body = org.post("/api/v1/tenants/acme/api-keys/", {}, format="json").json()

    assert org.get(f"/api/v1/tenants/globex/api-keys/{body['id']}/").status_code == 404
    assert org.delete(f"/api/v1/tenants/globex/api-keys/{body['id']}/").status_code == 404
    assert ApiKey.objects.get(id=body["id"]).revoked_at is None


def test_a_portal_link_from_the_organisation_key_opens_that_tenants_dashboard(org, client):
    created_tenant(org, name="Acme")
    created_tenant(org, slug="globex", name="Globex")
    EndpointFactory(tenant=Tenant.objects.get(slug="globex"), url="http://127.0.0.1:9/globex")

    response = org.post(
        "/api/v1/tenants/acme/portal-links/", {"capabilities": ["replay"]}, format="json"
    )

    assert response.status_code == 201, response.content
    link = response.json()
    assert link["capabilities"] == ["replay", "view"]
    opened = client.get(urlsplit(link["url"]).path, follow=True)
    assert b"Viewing <strong>Acme</strong>" in opened.content
    assert b"globex" not in client.get("/dashboard/endpoints/").content
    listed = org.get("/api/v1/tenants/acme/portal-links/").json()["results"]
    assert [(item["id"], item["state"]) for item in listed] == [(link["id"], "used")]
    assert org.get("/api/v1/tenants/globex/portal-links/").json()["results"] == []


def test_a_portal_link_records_which_organisation_key_issued_it(org):
    created_tenant(org)
    key = OrganisationKey.objects.get()

    link = org.post("/api/v1/tenants/acme/portal-links/", {}, format="json").json()

    [listed] = org.get("/api/v1/tenants/acme/portal-links/").json()["results"]
    assert listed["issued_by"] == key.prefix
    assert key.prefix.startswith("hlo_")
    stored = PortalLink.objects.get(id=link["id"])
    assert (stored.issued_by, stored.issued_by_org_key) == (None, key)
    key.delete()  # the link stays, without its issuer
    assert PortalLink.objects.get(id=link["id"]).issued_by_org_key is None


def test_the_organisation_key_revokes_a_portal_link(org, client):
    created_tenant(org)
    link = org.post("/api/v1/tenants/acme/portal-links/", {}, format="json").json()

    assert org.delete(f"/api/v1/tenants/acme/portal-links/{link['id']}/").status_code == 204

    assert PortalLink.objects.get(id=link["id"]).revoked_at is not None
    assert client.get(urlsplit(link["url"]).path).status_code == 410


def test_a_deactivated_tenant_gets_no_new_keys_nor_links(org):
    created_tenant(org)
    org.delete("/api/v1/tenants/acme/")

    for path in ["api-keys", "portal-links"]:
        response = org.post(f"/api/v1/tenants/acme/{path}/", {}, format="json")
        assert response.status_code == 409
        assert "deactivated" in assert_error_body(response, "conflict")["detail"]
    assert not ApiKey.objects.exists()
    assert not PortalLink.objects.exists()


def test_a_tenant_key_cannot_manage_tenants(api, tenant_a, tenant_b):
    paths = [
        ("get", "/api/v1/tenants/"),
        ("post", "/api/v1/tenants/"),
        ("get", f"/api/v1/tenants/{tenant_b.slug}/"),
        ("patch", f"/api/v1/tenants/{tenant_a.slug}/"),
        ("delete", f"/api/v1/tenants/{tenant_b.slug}/"),
        ("get", f"/api/v1/tenants/{tenant_a.slug}/api-keys/"),
        ("post", f"/api/v1/tenants/{tenant_b.slug}/api-keys/"),
        ("post", f"/api/v1/tenants/{tenant_a.slug}/portal-links/"),
        ("get", f"/api/v1/tenants/{tenant_b.slug}/portal-links/"),
    ]
    for method, path in paths:
        body = None if method == "get" else {"slug": "x", "max_events_per_second": 1}
        response = getattr(api, method)(path, body, format="json")
        assert response.status_code == 403, (method, path, response.content)
        assert "organisation key" in assert_error_body(response)["detail"]
    assert Tenant.objects.count() == 2
    assert all(t.is_active and t.max_events_per_second is None for t in Tenant.objects.all())
    assert ApiKey.objects.count() == 1
    assert not PortalLink.objects.exists()


def test_a_staff_key_may_not_create_or_deactivate_tenants_nor_set_limits(staff_api, tenant_b):
    assert staff_api.post("/api/v1/tenants/", {"slug": "new"}, format="json").status_code == 403
    assert staff_api.delete(f"/api/v1/tenants/{tenant_b.slug}/").status_code == 403
    assert staff_api.post(f"/api/v1/tenants/{tenant_b.slug}/api-keys/").status_code == 403
    staff_api.patch(
        f"/api/v1/tenants/{tenant_b.slug}/",
        {"max_events_per_second": 1, "retention_days": 1},
        format="json",
    )
    tenant_b.refresh_from_db()
    assert tenant_b.is_active
    assert (tenant_b.max_events_per_second, tenant_b.retention_days) == (None, None)
    assert not Tenant.objects.filter(slug="new").exists()


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/endpoints/",
        "/api/v1/deliveries/",
        "/api/v1/portal-links/",
        "/api/v1/replay-jobs/1/",
        "/api/v1/events/msg_x/",
    ],
)
def test_an_organisation_key_is_refused_on_tenant_paths(org, path):
    response = org.get(path)

    assert response.status_code == 403
    assert "belongs to no tenant" in assert_error_body(response)["detail"]


def test_an_organisation_key_cannot_emit_for_no_tenant(org):
    EventTypeFactory(name="order.paid")
    response = org.post(
        "/api/v1/events/", {"event_type": "order.paid", "payload": {}}, format="json"
    )
    assert response.status_code == 403


def test_an_organisation_key_changes_the_event_type_catalog(org):
    response = org.post("/api/v1/event-types/", {"name": "invoice.sent"}, format="json")
    assert response.status_code == 201, response.content


def test_a_revoked_organisation_key_is_refused(org):
    OrganisationKey.objects.update(revoked_at="2026-01-01T00:00:00Z")
    assert org.get("/api/v1/tenants/").status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"slug": "has space"},
        {"slug": "nul\x00slug"},
        {"slug": ""},
        {"slug": "x" * 65},
        {"slug": 12},
        {"slug": "ok", "name": "nul\x00name"},
        {"slug": "ok", "name": ""},
        {"slug": "ok", "max_events_per_second": 0},
        {"slug": "ok", "max_events_per_second": -1},
        {"slug": "ok", "max_events_per_second": 2**63},
        {"slug": "ok", "max_events_per_second": 10**100},
        {"slug": "ok", "max_events_per_second": 1.5},
        {"slug": "ok", "max_events_per_second": "10"},
        {"slug": "ok", "retention_days": -1},
        {"slug": "ok", "retention_days": 36_501},
        {"slug": "ok", "retention_days": 2**31},
        {"slug": "ok", "delivery_weight": 0},
        {"slug": "ok", "is_active": "yes"},
    ],
)
def test_bad_tenant_input_is_a_400_and_creates_nothing(org, body):
    response = org.post("/api/v1/tenants/", body, format="json")

    assert response.status_code == 400, response.content
    assert_error_body(response, "invalid")
    assert not Tenant.objects.exists()


def test_a_taken_slug_is_a_400(org):
    created_tenant(org)
    response = org.post("/api/v1/tenants/", {"slug": "acme"}, format="json")
    assert response.status_code == 400
    assert "slug" in assert_error_body(response, "invalid")["fields"]


def test_a_lone_surrogate_in_a_tenant_is_a_400(org):
    response = org.generic(
        "POST",
        "/api/v1/tenants/",
        b'{"slug": "ok", "name": "\\ud800"}',
        content_type="application/json",
    )
    assert response.status_code == 400
    assert not Tenant.objects.exists()


@pytest.mark.parametrize("slug", ["nobody", "nul%00", "%ED%A0%80", "x" * 300])
def test_an_unknown_slug_is_a_404_everywhere(org, slug):
    for path in ["", "api-keys/", "portal-links/"]:
        response = org.get(f"/api/v1/tenants/{slug}/{path}")
        assert response.status_code == 404, (slug, path, response.content)
        assert_error_body(response)
    assert org.post(f"/api/v1/tenants/{slug}/api-keys/", {}, format="json").status_code == 404


@pytest.mark.parametrize("key_id", ["0", "-1", "99999999999999999999999", "abc"])
def test_an_unknown_api_key_id_is_a_404(org, key_id):
    created_tenant(org)
    assert org.get(f"/api/v1/tenants/acme/api-keys/{key_id}/").status_code == 404
    assert org.delete(f"/api/v1/tenants/acme/api-keys/{key_id}/").status_code == 404


def test_a_bad_portal_link_request_is_a_400(org):
    created_tenant(org)
    for body in [{"capabilities": ["admin"]}, {"expires_in": 10**30}, {"expires_in": 1}]:
        response = org.post("/api/v1/tenants/acme/portal-links/", body, format="json")
        assert response.status_code == 400, (body, response.content)
    assert not PortalLink.objects.exists()
