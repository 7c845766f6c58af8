"""Portal sessions framed by the host's site (WEBHOOKS_PORTAL_FRAME_ANCESTORS) and themed by
their link; every other dashboard page still refuses to be framed."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from rest_framework.test import APIClient

from config.env import env_origins
from dashboard.models import PortalLink
from dashboard.portal import portal_link_issue
from dashboard.portal_theme import PortalTheme
from subscriptions.services import api_key_create
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db
HOST = "https://app.example.com"


@pytest.fixture
def acme():
    return TenantFactory(slug="acme", name="Acme")


@pytest.fixture
def api(acme) -> APIClient:
    _, key = api_key_create(tenant=acme)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def open_link(client: Client, tenant, theme: PortalTheme | None = None, **extra):
    _, token = portal_link_issue(tenant=tenant, capabilities=["view"], lifetime=600, theme=theme)
    return client.get(f"/dashboard/portal/{token}/", **extra)


def directives(response) -> dict[str, str]:
    policy = response["Content-Security-Policy"]
    return {part.split(" ", 1)[0]: part.split(" ", 1)[1] for part in policy.split("; ")}


def test_portal_pages_may_be_framed_by_the_configured_origins_only(client, acme, settings):
    settings.WEBHOOKS_PORTAL_FRAME_ANCESTORS = (HOST, "https://*.example.org")

    opened = open_link(client, acme)
    page = client.get("/dashboard/endpoints/")

    for response in (opened, page):
        assert directives(response)["frame-ancestors"] == f"{HOST} https://*.example.org"
        assert "X-Frame-Options" not in response


def test_without_the_setting_portal_pages_refuse_framing(client, acme, settings):
    settings.WEBHOOKS_PORTAL_FRAME_ANCESTORS = ()
    open_link(client, acme)

    page = client.get("/dashboard/endpoints/")

    assert directives(page)["frame-ancestors"] == "'none'"
    assert page["X-Frame-Options"] == "DENY"


def test_signed_in_users_pages_never_allow_framing(client, acme, settings, django_user_model):
    settings.WEBHOOKS_PORTAL_FRAME_ANCESTORS = (HOST,)
    client.force_login(django_user_model.objects.create_user("ops", is_staff=True))

    page = client.get("/dashboard/endpoints/")

    assert directives(page)["frame-ancestors"] == "'none'"
    assert page["X-Frame-Options"] == "DENY"


def test_over_https_a_framed_portals_cookies_are_samesite_none_and_secure(acme, settings):
    settings.WEBHOOKS_PORTAL_FRAME_ANCESTORS = (HOST,)
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    client = Client(HTTP_X_FORWARDED_PROTO="https")

    opened = open_link(client, acme)
    page = client.get("/dashboard/")

    session = opened.cookies[settings.SESSION_COOKIE_NAME]
    csrf = page.cookies[settings.CSRF_COOKIE_NAME]
    for cookie in (session, csrf):
        assert cookie["samesite"] == "None"
        assert cookie["secure"] is True
        assert cookie["path"] == "/accounts/"  # still scoped to the sections that read it


def test_over_plain_http_the_cookies_stay_lax(client, acme, settings):
    settings.WEBHOOKS_PORTAL_FRAME_ANCESTORS = (HOST,)

    opened = open_link(client, acme)

    assert opened.cookies[settings.SESSION_COOKIE_NAME]["samesite"] == "Lax"


def test_a_themed_link_shows_the_hosts_name_logo_and_accent(client, acme):
    theme = PortalTheme("Acme Store", "https://cdn.acme.example/logo.png", "#0a7f5a")
    open_link(client, acme, theme)

    page = client.get("/dashboard/")

    html = page.content.decode()
    assert "Acme Store" in html
    assert '<img class="brand-logo" src="https://cdn.acme.example/logo.png"' in html
    assert "--accent: #0a7f5a;" in html
    assert directives(page)["img-src"] == "'self' data: https://cdn.acme.example"


def test_an_unthemed_session_keeps_hooklines_look(client, acme):
    open_link(client, acme)

    html = client.get("/dashboard/").content.decode()

    assert "brand-logo" not in html
    assert "--accent:" not in html


def test_the_api_issues_a_themed_link_and_lists_its_theme(api):
    theme = {
        "host_name": "Acme Store",
        "logo_url": "https://cdn.acme.example/l.svg",
        "accent": "#112233",
    }

    created = api.post("/api/v1/portal-links/", {"theme": theme}, format="json")

    assert created.status_code == 201, created.content
    assert created.json()["theme"] == theme
    listed = api.get(f"/api/v1/portal-links/{created.json()['id']}/").json()
    assert listed["theme"] == theme
    assert api.post("/api/v1/portal-links/", {}, format="json").json()["theme"] == {
        "host_name": "", "logo_url": "", "accent": ""}  # fmt: skip


@pytest.mark.parametrize(
    ("theme", "field"),
    [
        ({"logo_url": "http://cdn.acme.example/l.png"}, "logo_url"),
        ({"logo_url": "javascript:alert(1)"}, "logo_url"),
        ({"logo_url": "data:image/svg+xml,<svg/>"}, "logo_url"),
        ({"logo_url": "https://a b.example/l.png"}, "logo_url"),
        ({"logo_url": "https://x'; script-src *.example/l.png"}, "logo_url"),
        ({"logo_url": "https://user:pw@cdn.example/l.png"}, "logo_url"),
        ({"logo_url": "https://cdn.example/l .png"}, "logo_url"),
        ({"logo_url": "https://cdn.example/l\u0085.png"}, "logo_url"),
        ({"host_name": "zero\u2028width"}, "host_name"),
        ({"logo_url": "https://" + "a" * 2100}, "logo_url"),
        ({"accent": "red"}, "accent"),
        ({"accent": "#12345"}, "accent"),
        ({"accent": "#123456; }"}, "accent"),
        ({"host_name": "A" * 81}, "host_name"),
        ({"host_name": "two\nlines"}, "host_name"),
        ({"host_name": 5}, "host_name"),
    ],
)
def test_a_bad_theme_is_a_400_naming_the_field_and_issues_nothing(api, theme, field):
    response = api.post("/api/v1/portal-links/", {"theme": theme}, format="json")

    assert response.status_code == 400, response.content
    assert field in str(response.json())
    assert not PortalLink.objects.exists()


def test_a_portal_link_may_grant_view_secret(api):
    response = api.post("/api/v1/portal-links/", {"capabilities": ["view_secret"]}, format="json")

    assert response.status_code == 201
    assert response.json()["capabilities"] == ["view", "view_secret"]


@pytest.mark.parametrize(
    ("raw", "origins"),
    [
        ("", ()),
        ("https://app.example.com", ("https://app.example.com",)),
        ("https://a.example.com, http://localhost:8000  https://*.b.example",
         ("https://a.example.com", "http://localhost:8000", "https://*.b.example")),
        ("https://[::1]:8443", ("https://[::1]:8443",)),
    ],
)  # fmt: skip
def test_frame_ancestors_setting_reads_origins(monkeypatch, raw, origins):
    monkeypatch.setenv("WEBHOOKS_PORTAL_FRAME_ANCESTORS", raw)
    assert env_origins("WEBHOOKS_PORTAL_FRAME_ANCESTORS") == origins


@pytest.mark.parametrize(
    "raw",
    ["app.example.com", "https://app.example.com/path", "*", "'self'", "https://a;b", "ftp://x"],
)
def test_frame_ancestors_setting_refuses_what_is_not_an_origin(monkeypatch, raw):
    monkeypatch.setenv("WEBHOOKS_PORTAL_FRAME_ANCESTORS", raw)
    with pytest.raises(ImproperlyConfigured, match="WEBHOOKS_PORTAL_FRAME_ANCESTORS"):
        env_origins("WEBHOOKS_PORTAL_FRAME_ANCESTORS")
