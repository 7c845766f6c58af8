"""A tenant's test inbox must not capture the session of an operator who opens its URL.

The attack, in a real browser: a tenant with a portal link that may manage endpoints creates an
inbox and gets its URL opened by a signed-in operator (a link, a GET form, a POST form on a page
of the same site). Neither what the browser sends, nor the rows kept, nor the tenant's view of the
inbox may hold anything that opens the admin.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from inbox.models import InboxRequest
from subscriptions.services import api_key_create
from tests.dashboard.conftest import sign_in
from tests.factories import TenantFactory

pytestmark = [pytest.mark.services]
PASSWORD = "secret-pass-123"
SCOPED_PATHS = {"/accounts/", "/admin/", "/dashboard/"}


class AttackPage:
    """A page on another port of the same host (so the same site) that leads to the inbox."""

    def __init__(self, inbox_url: str) -> None:
        html = f"""<!doctype html><title>Quarterly report</title>
<a id="link" href="{inbox_url}?via=link">Open the report</a>
<form id="get-form" method="get" action="{inbox_url}">
  <input type="hidden" name="via" value="get-form"><button>Open (GET)</button></form>
<form id="post-form" method="post" action="{inbox_url}">
  <input type="hidden" name="via" value="post-form"><button>Open (POST)</button></form>
""".encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 -- http.server's naming
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(html)))
                self.end_headers()
                self.wfile.write(html)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://localhost:{self._server.server_address[1]}/"

    def __enter__(self) -> AttackPage:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def portal_path(tenant, capabilities: list[str]) -> str:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=tenant)[1]}")
    response = api.post("/api/v1/portal-links/", {"capabilities": capabilities}, format="json")
    assert response.status_code == 201, response.content
    return "/" + response.json()["url"].split("/", 3)[3]


def tenant_creates_an_inbox(page, tenant) -> str:
    page.goto(portal_path(tenant, ["manage_endpoints"]))
    page.goto("/dashboard/inbox/")
    page.click("button:has-text('Create an inbox URL')")
    page.wait_for_selector(".inbox-url code")
    return page.inner_text(".inbox-url code").strip()


def opens_the_admin(browser, base_url: str, session_key: str) -> bool:
    """Whether a fresh browser holding `session_key` as its session cookie gets into the admin."""
    context = browser.new_context(base_url=base_url)
    try:
        context.add_cookies(
            [{"name": "sessionid", "value": session_key, "domain": "localhost", "path": "/"}]
        )
        page = context.new_page()
        page.goto("/admin/")
        return "/admin/login/" not in page.url and "Site administration" in page.content()
    finally:
        context.close()


def test_an_operator_opening_a_tenants_inbox_url_hands_the_tenant_nothing_that_opens_the_admin(
    browser, live_server, transactional_db
):
    tenant = TenantFactory(slug="acme", name="Acme")
    get_user_model().objects.create_user("ops", "ops@example.com", PASSWORD, is_staff=True,
                                         is_superuser=True)  # fmt: skip
    tenant_context = browser.new_context(base_url=live_server.url)
    operator_context = browser.new_context(base_url=live_server.url)
    tenant_page, operator_page = tenant_context.new_page(), operator_context.new_page()
    inbox_url = tenant_creates_an_inbox(tenant_page, tenant)
    sign_in(operator_page, "ops")
    operator_cookies = {c["name"]: c["value"] for c in operator_context.cookies()}
    session_key, csrf_token = operator_cookies["sessionid"], operator_cookies["csrftoken"]
    assert opens_the_admin(browser, live_server.url, session_key)  # the check below can fail

    sent = []
    with AttackPage(inbox_url) as attack:
        for trigger in ("#link", "#get-form button", "#post-form button"):
            operator_page.goto(attack.url)
            with operator_page.expect_request(lambda r: "/inbox/" in r.url) as request:
                operator_page.click(trigger)
            operator_page.wait_for_load_state()
            sent.append(request.value.all_headers())

    # What the inbox kept.
    rows = list(InboxRequest.objects.filter(inbox__tenant=tenant).order_by("id"))
    assert [row.method for row in rows] == ["GET", "GET", "POST"]
    kept = json.dumps([[row.headers, row.body] for row in rows])
    assert not {"cookie", "authorization", "x-csrftoken"} & {
        name.lower() for row in rows for name in row.headers
    }
    # What the tenant sees of it.
    tenant_page.goto("/dashboard/inbox/")
    assert len(tenant_page.query_selector_all("details.inbox-request")) == 3
    seen = tenant_page.content()
    assert "via = post-form" in seen
    for secret in (session_key, csrf_token):
        assert secret not in kept
        assert secret not in seen
    # Nothing the tenant got, shaped like a session key, opens the admin.
    candidates = set(re.findall(r"sessionid=([^;\s\"'<&]+)", seen + kept))
    candidates |= set(re.findall(r"\b[a-z0-9]{32}\b", seen + kept))
    for candidate in sorted(candidates)[:20]:
        assert not opens_the_admin(browser, live_server.url, candidate), candidate

    # Nor did the operator's browser send the inbox any of Hookline's cookies (decision 0010).
    assert len(sent) == 3
    for headers in sent:
        assert "cookie" not in headers, headers

    # The operator is still signed in where Hookline needs the cookies.
    assert {c["path"] for c in operator_context.cookies()} <= SCOPED_PATHS
    operator_page.goto("/admin/")
    assert "Site administration" in operator_page.content()
    operator_page.goto("/dashboard/")
    assert "/accounts/login/" not in operator_page.url
    operator_page.click("button:has-text('Sign out')")
    operator_page.wait_for_url("**/accounts/login/")
    assert "sessionid" not in {c["name"] for c in operator_context.cookies()}
    tenant_context.close()
    operator_context.close()


def test_signing_in_replaces_a_session_cookie_kept_for_the_whole_site(page, transactional_db):
    get_user_model().objects.create_user("ops", "ops@example.com", PASSWORD, is_staff=True,
                                         is_superuser=True)  # fmt: skip
    page.context.add_cookies(
        [{"name": name, "value": "from-before", "domain": "localhost", "path": "/"}
         for name in ("sessionid", "csrftoken")]
    )  # fmt: skip

    sign_in(page, "ops")
    page.goto("/admin/")

    assert "Site administration" in page.content()
    assert {(c["name"], c["path"]) for c in page.context.cookies()} == {
        (name, path) for name in ("sessionid", "csrftoken") for path in SCOPED_PATHS
    }
