"""In the admin an operator sets up a tenant, an event type and an endpoint, and sees deliveries."""

from __future__ import annotations

import json
import re
import threading

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.messages.storage.cookie import CookieStorage
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from deliveries.models import Attempt, Delivery
from subscriptions.models import ApiKey, Endpoint, EventType, OrganisationKey, Tenant
from subscriptions.services import endpoint_rotate_secret, hash_api_key
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from tests.fetch_trap import FetchTrap
from webhooks import send_event
from webhooks.services import event_send

pytestmark = pytest.mark.django_db


def test_operator_creates_tenant_event_type_and_endpoint(admin_client):
    response = admin_client.post(
        "/admin/subscriptions/tenant/add/",
        {"slug": "acme", "name": "Acme", "is_active": "on", "delivery_weight": "1",
         "created_at_0": "2026-11-29", "created_at_1": "10:00:00",
         "api_keys-TOTAL_FORMS": "0", "api_keys-INITIAL_FORMS": "0"},
    )  # fmt: skip
    assert response.status_code == 302, response.content
    response = admin_client.post(
        "/admin/subscriptions/eventtype/add/",
        {"name": "order.paid", "description": "Paid", "schema": "null",
         "created_at_0": "2026-11-29", "created_at_1": "10:00:00"},
    )  # fmt: skip
    assert response.status_code == 302, response.content
    tenant, paid = Tenant.objects.get(slug="acme"), EventType.objects.get(name="order.paid")

    response = admin_client.post(
        "/admin/subscriptions/endpoint/add/",
        {"tenant": tenant.pk, "url": "http://127.0.0.1:8000/hook", "event_types": [paid.pk],
         "is_active": "on", "headers": "{}", "payload_format": "xml",
         "created_at_0": "2026-11-29", "created_at_1": "10:00:00"},
    )  # fmt: skip

    assert response.status_code == 200, response.content  # the page that shows its secret once
    endpoint = Endpoint.objects.get(tenant=tenant)
    assert endpoint.secret in response.content.decode()
    assert list(endpoint.event_types.all()) == [paid]
    assert endpoint.payload_format == "xml"
    assert endpoint.secret.startswith("whsec_")


def test_admin_refuses_an_endpoint_past_the_tenants_limit(admin_client, settings):
    settings.WEBHOOKS_MAX_ENDPOINTS_PER_TENANT = 1
    tenant = TenantFactory()
    EndpointFactory(tenant=tenant)

    response = admin_client.post(
        "/admin/subscriptions/endpoint/add/",
        {"tenant": tenant.pk, "url": "http://127.0.0.1:8000/second", "is_active": "on",
         "headers": "{}", "payload_format": "json", "created_at_0": "2026-11-29",
         "created_at_1": "10:00:00"},
    )  # fmt: skip

    assert response.status_code == 200
    assert b"already has 1 endpoints" in response.content
    assert b"This field is required" not in response.content  # refused for the limit alone
    assert Endpoint.objects.filter(tenant=tenant).count() == 1


@pytest.mark.services
@pytest.mark.pgbouncer
def test_concurrent_admin_creations_for_the_last_place_give_one_endpoint_and_form_errors(
    transactional_db, settings
):
    settings.WEBHOOKS_MAX_ENDPOINTS_PER_TENANT = 2
    tenant = EndpointFactory().tenant  # one place left
    operators = [
        get_user_model().objects.create_superuser(f"op{n}", password="pw-123456789")
        for n in range(6)
    ]
    start, statuses = threading.Barrier(len(operators)), []

    def add(operator) -> None:  # noqa: ANN001
        client = Client()
        client.force_login(operator)
        start.wait()
        try:
            response = client.post(
                "/admin/subscriptions/endpoint/add/",
                {"tenant": tenant.pk, "url": "http://127.0.0.1:8000/hook", "is_active": "on",
                 "headers": "{}", "payload_format": "json", "created_at_0": "2026-11-29",
                 "created_at_1": "10:00:00"},
            )  # fmt: skip
            # An endpoint added shows its secret once, on a page of its own (also a 200).
            added = b'class="shown-once"' in response.content
            statuses.append((response.status_code, added))
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=add, args=(operator,)) for operator in operators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [(200, False)] * 5 + [(200, True)]  # the others see the limit
    assert Endpoint.objects.filter(tenant=tenant).count() == 2


def test_admin_refuses_an_endpoint_on_a_private_address(admin_client, settings):
    settings.WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST = ()
    tenant = TenantFactory()

    response = admin_client.post(
        "/admin/subscriptions/endpoint/add/",
        {"tenant": tenant.pk, "url": "http://127.0.0.1:8000/hook", "is_active": "on",
         "headers": "{}", "created_at_0": "2026-11-29", "created_at_1": "10:00:00"},
    )  # fmt: skip

    assert response.status_code == 200
    assert b"private or reserved address" in response.content
    assert not Endpoint.objects.exists()


def test_admin_refuses_an_endpoint_on_hooklines_own_host(admin_client, settings):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "127.0.0.1"]
    tenant = TenantFactory()

    response = admin_client.post(
        "/admin/subscriptions/endpoint/add/",
        {"tenant": tenant.pk, "url": "http://127.0.0.1:8000/api/v1/events/", "is_active": "on",
         "headers": "{}", "created_at_0": "2026-11-29", "created_at_1": "10:00:00"},
    )  # fmt: skip

    assert response.status_code == 200
    assert b"URL points at Hookline itself" in response.content
    assert not Endpoint.objects.exists()


def test_admin_shows_deliveries_with_their_attempts(admin_client):
    tenant = TenantFactory()
    EventTypeFactory(name="order.paid")
    EndpointFactory(tenant=tenant, url="http://127.0.0.1:8000/hook")
    event = send_event(tenant, "order.paid", {"n": 1})
    delivery = Delivery.objects.get(event=event)
    Attempt.objects.create(
        delivery=delivery, number=1, started_at=delivery.created_at, duration_ms=12.5,
        url="http://127.0.0.1:8000/hook", response_status=503, error_kind="http_status",
        error_message="HTTP 503",
    )  # fmt: skip

    listing = admin_client.get("/admin/deliveries/delivery/")
    detail = admin_client.get(f"/admin/deliveries/delivery/{delivery.pk}/change/")
    event_page = admin_client.get(f"/admin/webhooks/event/{event.pk}/change/")

    assert listing.status_code == detail.status_code == event_page.status_code == 200
    assert event.public_id.encode() in listing.content
    assert b"HTTP 503" in detail.content
    assert b"http://127.0.0.1:8000/hook" in event_page.content


def test_admin_shows_an_events_payload_as_the_host_sent_it_and_read_only(admin_client):
    tenant = TenantFactory()
    EventTypeFactory(name="order.paid")
    event = event_send(
        tenant=tenant,
        event_type="order.paid",
        payload={"zeta": 1.1, "alpha": 1e308},
        payload_text='{"zeta": 1.10, "alpha": 1e308}',
    )

    page = admin_client.get(f"/admin/webhooks/event/{event.pk}/change/")

    assert page.status_code == 200
    expected = "<pre>{\n  &quot;zeta&quot;: 1.10,\n  &quot;alpha&quot;: 1e308\n}</pre>"
    assert expected in page.content.decode()
    assert 'name="payload"' not in page.content.decode()


@pytest.mark.parametrize(
    "path",
    [
        "/admin/subscriptions/tenant/",
        "/admin/subscriptions/apikey/",
        "/admin/subscriptions/eventtype/",
        "/admin/subscriptions/endpoint/",
        "/admin/webhooks/event/",
        "/admin/deliveries/delivery/",
        "/admin/deliveries/attempt/",
        "/admin/inbox/inbox/",
        "/admin/operations/operationalalert/",
        "/admin/dashboard/portallink/",
        "/admin/subscriptions/organisationkey/",
    ],
)
@pytest.mark.pgbouncer
def test_every_admin_list_renders(admin_client, path):
    assert admin_client.get(path).status_code == 200


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("/admin/deliveries/inbox/7/change/", "/admin/inbox/inbox/7/change/"),
        ("/admin/deliveries/inboxrequest/", "/admin/inbox/inboxrequest/"),
        (
            "/admin/deliveries/operationalalert/?state=open",
            "/admin/operations/operationalalert/?state=open",
        ),
        ("/admin/deliveries/portallink/", "/admin/dashboard/portallink/"),
    ],
)
def test_admin_pages_of_moved_models_answer_at_their_old_address(admin_client, old, new):
    response = admin_client.get(old)
    assert response.status_code == 301
    assert response["Location"] == new


def test_an_old_admin_address_redirects_only_within_the_admin(admin_client):
    response = admin_client.get("/admin/deliveries/inbox/%0dSet-Cookie:x=1/%2F%2Fevil.example/")
    assert response.status_code == 301
    assert response["Location"] == "/admin/inbox/inbox/%0DSet-Cookie%3Ax%3D1///evil.example/"
    assert admin_client.get("/admin/deliveries/inbox/%0a/").status_code == 404


def test_the_deliveries_admin_pages_that_did_not_move_are_not_redirected(admin_client):
    assert admin_client.get("/admin/deliveries/delivery/").status_code == 200


def test_endpoint_secret_is_never_shown_in_the_admin(admin_client):
    endpoint = EndpointFactory(url="http://127.0.0.1:8000/hook")
    page = admin_client.get(f"/admin/subscriptions/endpoint/{endpoint.pk}/change/")
    assert page.status_code == 200
    assert endpoint.secret.encode() not in page.content


def test_admin_creates_an_api_key_shown_once_and_revokes_it(admin_client):
    tenant = TenantFactory()

    page = admin_client.post(
        "/admin/subscriptions/tenant/",
        {"action": "create_api_key", "_selected_action": [tenant.pk]},
        follow=True,
    )

    key = re.search(rb'class="shown-once">(hl_[\w-]+)<', page.content).group(1).decode()
    api_key = ApiKey.objects.get(tenant=tenant)
    assert api_key.key_hash == hash_api_key(key)
    admin_client.post(
        "/admin/subscriptions/apikey/", {"action": "revoke", "_selected_action": [api_key.pk]}
    )
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert (
        key.encode()
        not in admin_client.get(f"/admin/subscriptions/tenant/{tenant.pk}/change/").content
    )


def test_admin_creates_a_staff_api_key_shown_once_on_its_own_page(admin_client):
    tenant = TenantFactory(slug="ops")

    page = admin_client.post(
        "/admin/subscriptions/tenant/",
        {"action": "create_staff_api_key", "_selected_action": [tenant.pk]},
    )

    assert page.status_code == 200  # the keys are on this page, not behind a redirect
    assert "no-store" in page["Cache-Control"]
    html = page.content.decode()
    key = re.search(r'<code class="shown-once">(hl_[\w-]+)</code>', html).group(1)
    assert "shown only now: copy them" in html
    assert key not in page.cookies.output()  # not in a message cookie
    api_key = ApiKey.objects.get(tenant=tenant)
    assert (api_key.is_staff, api_key.key_hash) == (True, hash_api_key(key))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    created = client.post("/api/v1/event-types/", {"name": "order.paid"}, format="json")
    assert created.status_code == 201, created.content
    # Shown once: neither the list nor the tenant's page shows it again.
    for path in (
        "/admin/subscriptions/tenant/",
        f"/admin/subscriptions/tenant/{tenant.pk}/change/",
    ):
        assert key.encode() not in admin_client.get(path).content


def test_only_users_who_may_add_api_keys_may_create_staff_keys(client, django_user_model):
    tenant = TenantFactory(slug="ops")
    operator = django_user_model.objects.create_user("operator", password="pw", is_staff=True)
    operator.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_tenant", "change_tenant"])
    )
    client.force_login(operator)

    listing = client.get("/admin/subscriptions/tenant/")
    attempt = client.post(
        "/admin/subscriptions/tenant/",
        {"action": "create_staff_api_key", "_selected_action": [tenant.pk]},
    )

    assert listing.status_code == 200
    assert b"create_staff_api_key" not in listing.content
    assert attempt.status_code in (200, 302)
    assert b"shown-once" not in attempt.content
    assert not ApiKey.objects.filter(tenant=tenant).exists()


@pytest.mark.pgbouncer
def test_admin_delivery_list_filters_by_tenant_endpoint_type_and_date(admin_client):
    paid = EventTypeFactory(name="order.paid")
    mine, other = TenantFactory(slug="mine"), TenantFactory(slug="other")
    EndpointFactory(tenant=mine, url="http://127.0.0.1:8000/mine")
    EndpointFactory(tenant=other, url="http://127.0.0.1:8000/other")
    mine_event = send_event(mine, "order.paid", {})
    other_event = send_event(other, "order.paid", {})

    page = admin_client.get(f"/admin/deliveries/delivery/?endpoint__tenant__id__exact={mine.pk}")
    mine_endpoint = Endpoint.objects.get(tenant=mine)
    by_type = admin_client.get(
        f"/admin/deliveries/delivery/?event__event_type__id__exact={paid.pk}"
    )
    by_endpoint = admin_client.get(
        f"/admin/deliveries/delivery/?endpoint__id__exact={mine_endpoint.pk}"
    )
    today = admin_client.get(
        "/admin/deliveries/delivery/?created_at__gte=2000-01-01+00:00:00%2B00:00"
    )

    assert mine_event.public_id.encode() in page.content
    assert other_event.public_id.encode() not in page.content
    assert by_type.status_code == today.status_code == by_endpoint.status_code == 200
    assert other_event.public_id.encode() in by_type.content
    assert other_event.public_id.encode() not in by_endpoint.content
    assert mine_event.public_id.encode() in today.content


# --- Secrets shown once: in the page, never in a cookie or the session ----------------------------

TOKEN = "Bearer sk_live_9f8e7d6c5b4a3210abcd"
ENDPOINT_FORM = {"url": "http://127.0.0.1:8000/hook", "payload_format": "json",
                 "created_at_0": "2026-11-29", "created_at_1": "10:00:00"}  # fmt: skip


def stored_outside_the_page(response) -> str:  # noqa: ANN001
    """Everything the response leaves behind: each Set-Cookie value, the messages cookie
    decoded, and every session as stored and decoded."""
    kept = []
    for cookie in response.cookies.values():
        kept.append(cookie.value)
        if cookie.key == "messages" and cookie.value:
            decoded = CookieStorage(RequestFactory().get("/"))._decode(cookie.value) or []
            kept.extend(str(message) for message in decoded)
    for session in Session.objects.all():
        kept.extend([session.session_data, json.dumps(session.get_decoded())])
    return "\n".join(kept)


def seen_by_the_operator(client, response) -> str:  # noqa: ANN001
    """The page the operator lands on (following the admin's redirect, if any)."""
    if response.status_code == 302:
        return client.get(response["Location"]).content.decode()
    assert response.status_code == 200
    return response.content.decode()


def test_a_new_endpoints_secret_is_shown_once_and_never_stored_in_a_cookie(admin_client):
    tenant = TenantFactory()

    response = admin_client.post(
        "/admin/subscriptions/endpoint/add/",
        {**ENDPOINT_FORM, "tenant": tenant.pk, "headers": json.dumps({"Authorization": TOKEN})},
    )

    secret = Endpoint.objects.get(tenant=tenant).secret
    assert secret not in stored_outside_the_page(response)
    assert TOKEN not in stored_outside_the_page(response)
    assert secret in seen_by_the_operator(admin_client, response)
    assert secret not in admin_client.get("/admin/subscriptions/endpoint/").content.decode()


def test_a_new_api_key_is_shown_once_and_never_stored_in_a_cookie(admin_client):
    tenant = TenantFactory()

    response = admin_client.post(
        "/admin/subscriptions/tenant/",
        {"action": "create_api_key", "_selected_action": [tenant.pk]},
    )

    shown = seen_by_the_operator(admin_client, response)
    key = re.search(r"hl_[\w-]{20,}", shown).group(0)
    assert ApiKey.objects.get(tenant=tenant).key_hash == hash_api_key(key)
    assert key not in stored_outside_the_page(response)
    assert key not in admin_client.get("/admin/subscriptions/tenant/").content.decode()


def test_a_rotated_secret_is_shown_once_and_never_stored_in_a_cookie(admin_client):
    endpoint = EndpointFactory()

    response = admin_client.post(
        "/admin/subscriptions/endpoint/",
        {"action": "rotate_secret", "_selected_action": [endpoint.pk]},
    )

    endpoint.refresh_from_db()
    assert endpoint.secret not in stored_outside_the_page(response)
    assert endpoint.secret in seen_by_the_operator(admin_client, response)
    assert (
        endpoint.secret not in admin_client.get("/admin/subscriptions/endpoint/").content.decode()
    )


def test_the_rotate_action_names_the_configured_overlap(admin_client, settings):
    settings.WEBHOOKS_SECRET_ROTATION_OVERLAP = 2 * 3600 + 30 * 60
    endpoint = EndpointFactory()

    listing = admin_client.get("/admin/subscriptions/endpoint/").content.decode()
    response = admin_client.post(
        "/admin/subscriptions/endpoint/",
        {"action": "rotate_secret", "_selected_action": [endpoint.pk]},
    )
    shown = seen_by_the_operator(admin_client, response)

    assert "keeps signing for 2 h 30 min" in listing
    assert "keep signing for 2 h 30 min" in shown
    assert "24 h" not in listing
    assert "24 h" not in shown


def test_the_endpoint_page_lists_when_each_replaced_secret_stops_signing(admin_client):
    endpoint = EndpointFactory()
    endpoint_rotate_secret(endpoint=endpoint, overlap_seconds=3600)
    endpoint_rotate_secret(endpoint=endpoint, overlap_seconds=7200)

    page = admin_client.get(f"/admin/subscriptions/endpoint/{endpoint.pk}/change/")

    assert page.status_code == 200
    assert page.content.decode().count("one until ") == 2


def test_the_endpoint_form_masks_header_values_and_keeps_a_masked_value_left_alone(admin_client):
    endpoint = EndpointFactory(headers={"Authorization": TOKEN, "X-Old": "old-value"})
    path = f"/admin/subscriptions/endpoint/{endpoint.pk}/change/"

    page = admin_client.get(path).content.decode()
    response = admin_client.post(
        path,
        {**ENDPOINT_FORM, "tenant": endpoint.tenant_id, "url": endpoint.url,
         "headers": json.dumps({"Authorization": "••••abcd", "X-New": "new-value"})},
    )  # fmt: skip

    assert TOKEN not in page
    assert "••••abcd" in page
    assert response.status_code == 302, response.content.decode()
    endpoint.refresh_from_db()
    assert endpoint.headers == {"Authorization": TOKEN, "X-New": "new-value"}


@pytest.mark.parametrize("name", ["Keep-Alive", "proxy-authorization", "TE", "Upgrade"])
def test_the_endpoint_form_refuses_hop_by_hop_headers_naming_them(admin_client, name):
    tenant = TenantFactory()

    response = admin_client.post(
        "/admin/subscriptions/endpoint/add/",
        {**ENDPOINT_FORM, "tenant": tenant.pk, "headers": json.dumps({name: "x"})},
    )

    assert response.status_code == 200
    assert f"Header &#x27;{name}&#x27; is a hop-by-hop" in response.content.decode()
    assert not Endpoint.objects.exists()


def test_the_endpoint_form_shown_again_after_an_error_keeps_what_was_typed(admin_client, settings):
    settings.WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST = ()
    endpoint = EndpointFactory(headers={"Authorization": TOKEN})
    path = f"/admin/subscriptions/endpoint/{endpoint.pk}/change/"
    typed = {"Authorization": "••••abcd", "X-New": "typed-new-value"}

    refused = admin_client.post(
        path,
        {**ENDPOINT_FORM, "tenant": endpoint.tenant_id, "url": "http://10.0.0.1/hook",
         "headers": json.dumps(typed, ensure_ascii=False)},
    )  # fmt: skip

    assert refused.status_code == 200
    assert "typed-new-value" in refused.content.decode()
    assert TOKEN not in refused.content.decode()


def test_admin_refuses_an_event_type_schema_referring_outside_itself_and_fetches_nothing(
    admin_client,
):
    with FetchTrap() as trap:
        response = admin_client.post(
            "/admin/subscriptions/eventtype/add/",
            {"name": "order.paid", "description": "Paid",
             "schema": json.dumps({"allOf": [{"$ref": trap.url()}]}),
             "created_at_0": "2026-11-29", "created_at_1": "10:00:00"},
        )  # fmt: skip

    assert response.status_code == 200
    assert b"points outside the schema" in response.content
    assert trap.paths == []
    assert not EventType.objects.filter(name="order.paid").exists()


@pytest.mark.parametrize(
    ("weight", "status", "saved"), [("3", 302, 3), ("0", 200, 1), ("101", 200, 1), ("x", 200, 1)]
)
def test_a_tenants_delivery_weight_is_edited_in_the_admin_from_1_to_100(
    admin_client, weight, status, saved
):
    tenant = TenantFactory()
    form = {"slug": tenant.slug, "name": tenant.name, "is_active": "on", "delivery_weight": weight,
            "created_at_0": "2026-01-01", "created_at_1": "00:00:00",
            "api_keys-TOTAL_FORMS": "0", "api_keys-INITIAL_FORMS": "0"}  # fmt: skip

    page = admin_client.post(f"/admin/subscriptions/tenant/{tenant.pk}/change/", form)

    assert page.status_code == status  # 200: the form again, with the error
    tenant.refresh_from_db()
    assert tenant.delivery_weight == saved


def test_admin_shows_and_edits_an_endpoints_metadata_and_channels(admin_client):
    endpoint = EndpointFactory(metadata={"customer": "cus_42"}, channels=["eu"])
    page = f"/admin/subscriptions/endpoint/{endpoint.pk}/change/"
    form = {"tenant": endpoint.tenant.pk, "url": endpoint.url, "headers": "{}",
            "payload_format": "json", "created_at_0": "2026-11-29", "created_at_1": "10:00:00",
            "metadata": '{"customer": "cus_43"}'}  # fmt: skip

    shown = admin_client.get(page).content.decode()
    refused = admin_client.post(page, {**form, "channels": '["e u"]'})
    saved = admin_client.post(page, {**form, "channels": '["us", "us"]'})

    assert "cus_42" in shown
    assert "&quot;eu&quot;" in shown
    assert refused.status_code == 200
    assert "is not a channel" in refused.content.decode()
    assert saved.status_code == 302, saved.content.decode()[:3000]
    endpoint.refresh_from_db()
    assert (endpoint.metadata, endpoint.channels) == ({"customer": "cus_43"}, ["us"])


def test_admin_shows_an_events_channels(admin_client):
    EndpointFactory(tenant=TenantFactory(slug="acme"))
    EventTypeFactory(name="order.paid")
    event = send_event("acme", "order.paid", {"order_id": "o-1"}, channels=["eu-west"])

    page = admin_client.get(f"/admin/webhooks/event/{event.pk}/change/")

    assert "eu-west" in page.content.decode()


def test_admin_adds_an_organisation_key_shown_once_and_revokes_it(admin_client):
    response = admin_client.post(
        "/admin/subscriptions/organisationkey/add/", {"name": "billing service"}
    )

    shown = seen_by_the_operator(admin_client, response)
    key = re.search(r"hlo_[\w-]{20,}", shown).group(0)
    stored = OrganisationKey.objects.get(name="billing service")
    assert stored.key_hash == hash_api_key(key)
    assert key not in stored_outside_the_page(response)
    assert key not in admin_client.get("/admin/subscriptions/organisationkey/").content.decode()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.get("/api/v1/tenants/").status_code == 200

    admin_client.post(
        "/admin/subscriptions/organisationkey/",
        {"action": "revoke", "_selected_action": [stored.pk]},
    )

    assert api.get("/api/v1/tenants/").status_code == 401


def test_admin_sets_a_tenants_emit_quota_and_retention(admin_client):
    tenant = TenantFactory(slug="acme", name="Acme")
    form = {"slug": "acme", "name": "Acme", "is_active": "on", "delivery_weight": "1",
            "verify_endpoints": "unknown", "created_at_0": "2026-12-01", "created_at_1": "10:00:00",
            "max_events_per_second": "25", "retention_days": "90",
            "api_keys-TOTAL_FORMS": "0", "api_keys-INITIAL_FORMS": "0"}  # fmt: skip

    response = admin_client.post(f"/admin/subscriptions/tenant/{tenant.pk}/change/", form)

    assert response.status_code == 302, response.content.decode()[:2000]
    tenant.refresh_from_db()
    assert (tenant.max_events_per_second, tenant.retention_days) == (25, 90)
    refused = admin_client.post(
        f"/admin/subscriptions/tenant/{tenant.pk}/change/",
        {**form, "max_events_per_second": "0", "retention_days": "-3"},
    )
    assert refused.status_code == 200
    tenant.refresh_from_db()
    assert (tenant.max_events_per_second, tenant.retention_days) == (25, 90)
