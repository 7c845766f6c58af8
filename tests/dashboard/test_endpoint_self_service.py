"""A tenant manages its own endpoints in the dashboard: add, edit, reveal and rotate the secret,
disable, enable, delete. Each needs its capability, stays within the viewer's tenant, and takes
the same checks as the API."""

from __future__ import annotations

import pytest
from django.test import Client

from dashboard.models import SecretReveal
from dashboard.portal import portal_link_issue
from subscriptions.models import Endpoint
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory

pytestmark = pytest.mark.django_db

EVERYTHING = ("view", "manage_endpoints", "view_secret", "replay")
SCHEMA = {
    "type": "object",
    "required": ["order_id", "amount"],
    "properties": {
        "order_id": {"type": "string", "minLength": 3},
        "amount": {"type": "integer", "minimum": 1},
    },
}


@pytest.fixture
def acme():
    return TenantFactory(slug="acme", name="Acme")


@pytest.fixture
def globex():
    return TenantFactory(slug="globex", name="Globex")


@pytest.fixture
def order_paid():
    return EventTypeFactory(name="order.paid", description="An order was paid.", schema=SCHEMA)


def portal(tenant, capabilities=EVERYTHING, client: Client | None = None) -> Client:
    """A browser-like client holding a portal session of `tenant`."""
    client = client or Client()
    _, token = portal_link_issue(tenant=tenant, capabilities=capabilities, lifetime=600)
    assert client.get(f"/dashboard/portal/{token}/").status_code == 302
    return client


def add(client: Client, **fields) -> object:
    data = {"url": "http://127.0.0.1:9/new", "description": "", "headers": "",
            "rate_limit": "", "payload_format": "json", **fields}  # fmt: skip
    return client.post("/dashboard/endpoints/new/", data)


def test_adding_an_endpoint_stores_it_with_its_event_types_and_shows_its_secret_once(
    acme, order_paid
):
    client = portal(acme)

    response = add(client, url="http://127.0.0.1:9/orders", event_types=[order_paid.pk],
                   headers="Authorization: Bearer abcdefgh12345678")  # fmt: skip

    assert response.status_code == 200
    endpoint = Endpoint.objects.get(tenant=acme)
    assert endpoint.url == "http://127.0.0.1:9/orders"
    assert [kind.name for kind in endpoint.event_types.all()] == ["order.paid"]
    assert endpoint.headers == {"Authorization": "Bearer abcdefgh12345678"}
    html = response.content.decode()
    assert endpoint.secret in html
    assert response["Cache-Control"] == "no-store"
    [shown] = SecretReveal.objects.all()
    assert (shown.kind, shown.endpoint_id, shown.user) == ("created", endpoint.id, None)
    assert shown.portal_link_id is not None
    assert (
        endpoint.secret not in client.get(f"/dashboard/endpoints/{endpoint.pk}/").content.decode()
    )


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://127.0.0.1/x", "URL must start with https://."),
        ("127.0.0.1:9/x", "URL must start with https://."),
        ("http://10.1.2.3/hook", "URL is not allowed"),
        ("http://user:pw@127.0.0.1:9/x", "must not contain a user name or password"),
        ("http://127.0.0.1:99999/x", "Not a valid URL"),
    ],
)
def test_a_url_the_api_refuses_is_refused_beside_the_field_and_nothing_is_stored(
    acme, url, problem
):
    response = add(portal(acme), url=url)

    assert response.status_code == 400
    html = response.content.decode()
    errors = html.split('data-testid="error-url"', 1)[1].split("</ul>", 1)[0]
    assert problem in errors.replace("&#x27;", "'")
    assert not Endpoint.objects.exists()


def test_nul_in_the_form_body_is_refused_and_a_lone_surrogate_is_no_500(acme):
    client = portal(acme)
    # Undecodable bytes arrive as U+FFFD, a character like any other: no server error.
    surrogate = "url=http%3A%2F%2F127.0.0.1%3A9%2F%ED%B3%BF&payload_format=json"
    response = client.post(
        "/dashboard/endpoints/new/", surrogate, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200
    Endpoint.objects.all().delete()
    for body in (
        "url=http%3A%2F%2F127.0.0.1%3A9%2F%00&payload_format=json",
        "url=http%3A%2F%2F127.0.0.1%3A9%2Fok&payload_format=json&headers=X-A%3A+%ED%B3%BF",
    ):
        response = client.post(
            "/dashboard/endpoints/new/", body, content_type="application/x-www-form-urlencoded"
        )
        assert response.status_code == 400, body
    assert not Endpoint.objects.exists()


def test_headers_keep_masked_values_and_refuse_what_the_api_refuses(acme):
    client = portal(acme)
    endpoint = EndpointFactory(tenant=acme, headers={"X-Token": "secret-value-1234"})
    form = client.get(f"/dashboard/endpoints/{endpoint.pk}/settings/").content.decode()
    assert "secret-value-1234" not in form
    assert "X-Token: ••••1234" in form

    kept = client.post(f"/dashboard/endpoints/{endpoint.pk}/settings/", {
        "url": endpoint.url, "headers": "X-Token: ••••1234\nX-Other: plain",
        "payload_format": "xml", "rate_limit": "7", "description": "Orders"})  # fmt: skip
    refused = client.post(f"/dashboard/endpoints/{endpoint.pk}/settings/", {
        "url": endpoint.url, "headers": "Content-Type: text/plain",
        "payload_format": "json"})  # fmt: skip

    assert kept.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.headers == {"X-Token": "secret-value-1234", "X-Other": "plain"}
    assert (endpoint.payload_format, endpoint.rate_limit, endpoint.description) == (
        "xml",
        7,
        "Orders",
    )
    assert refused.status_code == 400
    assert "set by Hookline and cannot be overridden" in refused.content.decode().replace(
        "&#x27;", "'"
    )
    endpoint.refresh_from_db()
    assert endpoint.payload_format == "xml"


def test_bad_numbers_and_ids_are_refused_without_a_change(acme):
    client = portal(acme)
    endpoint = EndpointFactory(tenant=acme)
    for data in (
        {"rate_limit": "99999999999999999999"},
        {"rate_limit": "-1"},
        {"event_types": ["99999999999999999999"]},
        {"event_types": ["x\x00"]},
        {"description": "nul \x00 inside"},
        {"payload_format": "yaml"},
    ):
        response = client.post(
            f"/dashboard/endpoints/{endpoint.pk}/settings/",
            {"url": endpoint.url, "payload_format": "json", **data},
        )
        assert response.status_code == 400, data
    fresh = Endpoint.objects.get(pk=endpoint.pk)
    assert (fresh.rate_limit, fresh.description, fresh.payload_format) == (None, "", "json")


def test_reveal_needs_view_secret_and_each_reveal_is_logged(acme):
    endpoint = EndpointFactory(tenant=acme)
    blind = portal(acme, ("view", "manage_endpoints"))
    seeing = portal(acme, ("view", "view_secret"))

    page = blind.get(f"/dashboard/endpoints/{endpoint.pk}/").content.decode()
    refused = blind.post(f"/dashboard/endpoints/{endpoint.pk}/secret/reveal/")
    shown = seeing.post(
        f"/dashboard/endpoints/{endpoint.pk}/secret/reveal/", HTTP_HX_REQUEST="true"
    )

    assert "secret-reveal" not in page
    assert refused.status_code == 403
    assert shown.status_code == 200
    assert endpoint.secret in shown.content.decode()
    [reveal] = SecretReveal.objects.all()
    assert reveal.kind == "reveal"
    assert reveal.endpoint_id == endpoint.id
    assert "Rotate…" not in seeing.get(f"/dashboard/endpoints/{endpoint.pk}/").content.decode()


@pytest.mark.parametrize(("overlap", "signing"), [("0", 1), ("3600", 2), ("604800", 2)])
def test_rotating_with_a_chosen_overlap_keeps_the_old_secret_signing_that_long(
    acme, overlap, signing
):
    endpoint = EndpointFactory(tenant=acme)
    old = endpoint.secret

    response = portal(acme).post(
        f"/dashboard/endpoints/{endpoint.pk}/secret/rotate/", {"overlap": overlap}
    )

    endpoint.refresh_from_db()
    assert endpoint.secret != old
    assert endpoint.secret in response.content.decode()
    assert len(endpoint.signing_secrets()) == signing
    assert ("Previous secret valid until" in response.content.decode()) == (overlap != "0")


@pytest.mark.parametrize("overlap", ["", "60", "-1", "1e9", "86400\x00"])
def test_rotating_with_an_overlap_not_offered_changes_nothing(acme, overlap):
    endpoint = EndpointFactory(tenant=acme)
    old = endpoint.secret

    portal(acme).post(f"/dashboard/endpoints/{endpoint.pk}/secret/rotate/", {"overlap": overlap})

    endpoint.refresh_from_db()
    assert endpoint.secret == old


def test_disable_enable_and_delete_after_typing_the_host(acme):
    client = portal(acme)
    endpoint = EndpointFactory(tenant=acme, url="http://127.0.0.1:9/bye")
    base = f"/dashboard/endpoints/{endpoint.pk}"

    client.post(f"{base}/disable/")
    assert not Endpoint.objects.get(pk=endpoint.pk).is_active
    client.post(f"{base}/enable/")
    assert Endpoint.objects.get(pk=endpoint.pk).is_active
    client.post(f"{base}/delete/", {"confirm_host": "example.com"})
    client.post(f"{base}/delete/")
    assert Endpoint.objects.filter(pk=endpoint.pk).exists()
    client.post(f"{base}/delete/", {"confirm_host": "127.0.0.1"})
    assert not Endpoint.objects.filter(pk=endpoint.pk).exists()


def test_a_session_without_manage_endpoints_sees_no_controls_and_is_refused(acme):
    endpoint = EndpointFactory(tenant=acme)
    client = portal(acme, ("view", "view_secret"))
    base = f"/dashboard/endpoints/{endpoint.pk}"

    listing = client.get("/dashboard/endpoints/").content.decode()
    detail = client.get(f"{base}/").content.decode()

    assert "Add endpoint" not in listing
    assert "settings-tab" not in detail
    assert "rotate-dialog" not in detail
    for path in ("/dashboard/endpoints/new/", f"{base}/settings/"):
        assert client.get(path).status_code == 403
    for path in ("disable/", "enable/", "delete/", "secret/rotate/", "settings/"):
        assert (
            client.post(f"{base}/{path}", {"confirm_host": "127.0.0.1", "overlap": "0"}).status_code
            == 403
        )
    assert add(client).status_code == 403
    fresh = Endpoint.objects.get(pk=endpoint.pk)
    assert (fresh.is_active, fresh.secret) == (True, endpoint.secret)
    assert Endpoint.objects.count() == 1


def test_another_tenants_endpoint_ids_answer_404_on_every_new_url_and_change_nothing(acme, globex):
    victim = EndpointFactory(tenant=acme, url="http://127.0.0.1:9/victim")
    attacker = portal(globex)
    base = f"/dashboard/endpoints/{victim.pk}"

    assert attacker.get(f"{base}/settings/").status_code == 404
    for path, data in [
        ("settings/", {"url": "http://127.0.0.1:9/stolen", "payload_format": "json"}),
        ("disable/", {}),
        ("enable/", {}),
        ("delete/", {"confirm_host": "127.0.0.1"}),
        ("secret/reveal/", {}),
        ("secret/rotate/", {"overlap": "0"}),
    ]:
        response = attacker.post(f"{base}/{path}", data)
        assert response.status_code == 404, path
        assert victim.secret not in response.content.decode()
    fresh = Endpoint.objects.get(pk=victim.pk)
    assert (fresh.url, fresh.is_active, fresh.secret) == (victim.url, True, victim.secret)
    assert not SecretReveal.objects.exists()


def test_posts_without_a_csrf_token_are_refused(acme):
    endpoint = EndpointFactory(tenant=acme)
    client = portal(acme, client=Client(enforce_csrf_checks=True))
    base = f"/dashboard/endpoints/{endpoint.pk}"

    for path in ("disable/", "delete/", "secret/reveal/", "secret/rotate/"):
        response = client.post(f"{base}/{path}", {"confirm_host": "127.0.0.1", "overlap": "0"})
        assert response.status_code == 403, path
    assert add(client).status_code == 403
    fresh = Endpoint.objects.get(pk=endpoint.pk)
    assert (fresh.is_active, fresh.secret) == (True, endpoint.secret)
    assert Endpoint.objects.count() == 1


def test_the_picker_shows_each_types_description_schema_and_an_example_that_fits(acme, order_paid):
    EventTypeFactory(name="order.refunded", description="Money went back.")
    EventTypeFactory(name="user.created", archived=True)

    html = portal(acme).get("/dashboard/endpoints/new/").content.decode()

    assert "An order was paid." in html
    assert "Money went back." in html
    assert "user.created" not in html  # archived types are not offered
    assert "hookline.test" not in html
    assert "receiving all events" in html
    assert "&quot;minLength&quot;: 3" in html
    assert "&quot;order_id&quot;: &quot;stringxxx&quot;" not in html  # shortest padding only
    assert "&quot;order_id&quot;: &quot;string&quot;" in html
    assert "&quot;amount&quot;: 1" in html


def test_a_member_adds_an_endpoint_for_the_tenant_selected(client, acme, django_user_model):
    user = django_user_model.objects.create_user("ana", password="x")
    acme.members.add(user)
    client.force_login(user)

    add(client, url="http://127.0.0.1:9/member")

    assert Endpoint.objects.get().tenant == acme
    assert SecretReveal.objects.get().user == user


def test_the_tenants_endpoint_limit_is_kept_and_said_on_the_form(acme, settings):
    settings.WEBHOOKS_MAX_ENDPOINTS_PER_TENANT = 1
    EndpointFactory(tenant=acme)

    response = add(portal(acme), url="http://127.0.0.1:9/one-too-many")

    assert response.status_code == 400
    errors = response.content.decode().split('data-testid="form-errors"', 1)[1]
    assert "already has 1 endpoints" in errors.split("</ul>", 1)[0]
    assert Endpoint.objects.filter(tenant=acme).count() == 1
