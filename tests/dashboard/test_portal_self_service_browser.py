"""The portal, self-serve, in a real browser: a tenant with nothing but a portal link adds its
endpoint, proves it owns it, and sees a signed test event arrive; manages its secret and its
endpoint's life; cannot touch another tenant's; and the portal works framed by the host's page."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dashboard.models import SecretReveal
from dashboard.portal import portal_link_issue
from dashboard.portal_theme import PortalTheme
from subscriptions.models import VERIFICATION_EVENT_TYPE, Endpoint
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from tests.receiver import Received
from webhooks.signing import VerificationError, verify

pytestmark = [pytest.mark.services]

EVERYTHING = ("view", "manage_endpoints", "view_secret")
ORDER_SCHEMA = {
    "type": "object",
    "required": ["order_id", "amount"],
    "properties": {"order_id": {"type": "string"}, "amount": {"type": "integer", "minimum": 1}},
}


def shoot(page, name: str) -> None:
    """Keep a screenshot when HOOKLINE_SCREENSHOTS names a folder (for looking at the pages)."""
    folder = os.environ.get("HOOKLINE_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def link_for(tenant, capabilities=EVERYTHING, theme: PortalTheme | None = None) -> str:
    _, token = portal_link_issue(
        tenant=tenant, capabilities=capabilities, lifetime=3600, theme=theme
    )
    return f"/dashboard/portal/{token}/"


class VerifyingReceiver:
    """The tenant's own receiver: it knows the secret once the tenant copied it there, rejects
    what it cannot verify with 401, and echoes ownership challenges that verify."""

    def __init__(self) -> None:
        self.secret: str | None = None
        self.verified: list[dict] = []

    def __call__(self, received: Received) -> tuple[int, bytes]:
        if self.secret is None:
            return 401, b'{"error": "no secret configured yet"}'
        try:
            message = verify(self.secret, received.headers, received.body).json()
        except VerificationError as error:
            return 401, json.dumps({"error": str(error)}).encode()
        self.verified.append(message)
        if message["type"] == VERIFICATION_EVENT_TYPE:
            return 200, json.dumps({"challenge": message["data"]["challenge"]}).encode()
        return 200, b'{"ok": true}'


def test_from_a_portal_link_alone_a_tenant_reaches_a_verified_delivery_at_its_own_endpoint(
    page, receiver, start_worker, settings
):
    settings.WEBHOOKS_VERIFY_ENDPOINTS = True
    settings.WEBHOOKS_TEST_WAIT_SECONDS = 0.0  # the delivery page follows the attempt
    start_worker()
    tenant = TenantFactory(slug="acme", name="Acme")
    EventTypeFactory(name="order.paid", description="An order was paid.", schema=ORDER_SCHEMA)
    EventTypeFactory(name="order.refunded", description="Money went back.")
    own = VerifyingReceiver()
    receiver.answer_with("/acme-hooks", own)

    page.goto(link_for(tenant))
    page.click("nav >> text=Endpoints")
    page.click("[data-testid=add-endpoint]")
    page.fill("#id_url", receiver.url("/acme-hooks"))
    page.fill("#id_description", "Acme's order service")
    page.check("input[name=event_types] >> nth=0")  # order.paid, the first in the catalog
    page.click("[data-testid=schema-order\\.paid] summary")
    example = json.loads(page.inner_text("[data-testid=example-order\\.paid]"))
    assert example["data"] == {"order_id": "string", "amount": 1}
    shoot(page, "portal-add-endpoint")
    page.click("button:has-text('Add endpoint')")

    page.wait_for_selector("text=Endpoint added")
    shoot(page, "portal-endpoint-added")
    own.secret = page.inner_text("[data-testid=new-secret]").strip()
    endpoint = Endpoint.objects.get(tenant=tenant)
    assert own.secret == endpoint.secret
    page.click("text=Continue to the endpoint")
    # Its first challenge went before the receiver knew the secret: the tenant asks for another.
    if "Unverified" in page.inner_text("[data-testid=verification-state]"):
        page.click("button:has-text('Send a new challenge')")
        for _ in range(40):
            if "Verified" in page.inner_text("[data-testid=verification-state]"):
                break
            page.wait_for_timeout(250)
            page.reload()
    assert page.inner_text("[data-testid=verification-state]").startswith("Verified")

    page.select_option("#test-event-type", "order.paid")
    page.click("form.test-form button[type=submit]")
    page.wait_for_selector("[data-testid=delivery-status] >> text=Delivered")
    shoot(page, "portal-delivered")

    kinds = [message["type"] for message in own.verified]
    assert kinds[-1] == "order.paid"
    assert VERIFICATION_EVENT_TYPE in kinds
    assert own.verified[-1]["data"] == {"order_id": "string", "amount": 1}
    assert [kind.name for kind in endpoint.event_types.all()] == ["order.paid"]


def test_reveal_rotate_disable_enable_and_delete_in_the_browser(page, transactional_db):
    tenant = TenantFactory(slug="acme", name="Acme")
    endpoint = EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/acme-hook")
    old_secret = endpoint.secret
    page.on("dialog", lambda dialog: dialog.accept())  # "Disable this endpoint?"
    page.goto(link_for(tenant))
    page.goto(f"/dashboard/endpoints/{endpoint.pk}/")

    assert old_secret not in page.content()
    page.click("[data-testid=secret-reveal]")
    page.wait_for_selector("[data-testid=secret-value]")
    assert old_secret in page.inner_text("[data-testid=secret-value]")
    assert SecretReveal.objects.filter(endpoint=endpoint, kind="reveal").count() == 1
    shoot(page, "portal-secret-revealed")

    page.click("[data-testid=secret-rotate]")
    page.check("input[name=overlap][value='3600']")
    shoot(page, "portal-rotate-dialog")
    page.click("button:has-text('Rotate secret')")
    page.wait_for_selector("text=Secret rotated")
    endpoint.refresh_from_db()
    assert endpoint.secret != old_secret
    assert page.inner_text("[data-testid=new-secret]") == endpoint.secret
    assert "Previous secret valid until" in page.inner_text("[data-testid=previous-until]")
    assert endpoint.signing_secrets()[1] == old_secret

    page.goto(f"/dashboard/endpoints/{endpoint.pk}/settings/")
    page.click("button:has-text('Disable endpoint')")
    page.wait_for_selector("text=Endpoint disabled")
    assert not Endpoint.objects.get(pk=endpoint.pk).is_active
    page.click(".banner button:has-text('Enable')")
    page.wait_for_selector("text=Endpoint enabled")
    assert Endpoint.objects.get(pk=endpoint.pk).is_active

    page.click("[data-testid=settings-tab]")
    page.click("button:has-text('Delete endpoint…')")
    assert page.is_disabled("[data-testid=delete-confirm]")
    page.fill("#confirm-host", "127.0.0.2")
    assert page.is_disabled("[data-testid=delete-confirm]")
    page.fill("#confirm-host", "127.0.0.1")
    shoot(page, "portal-delete-dialog")
    page.click("[data-testid=delete-confirm]")
    page.wait_for_selector("text=deleted, with its deliveries")
    assert not Endpoint.objects.filter(pk=endpoint.pk).exists()


def test_a_session_without_view_secret_has_no_reveal_and_is_refused(page, transactional_db):
    tenant = TenantFactory(slug="acme", name="Acme")
    endpoint = EndpointFactory(tenant=tenant)
    page.goto(link_for(tenant, ("view", "manage_endpoints")))
    page.goto(f"/dashboard/endpoints/{endpoint.pk}/")

    assert page.locator("[data-testid=secret-reveal]").count() == 0
    assert page.locator("[data-testid=secret-rotate]").count() == 1
    refused = page.request.post(
        f"/dashboard/endpoints/{endpoint.pk}/secret/reveal/", headers=csrf_header(page)
    )
    assert refused.status == 403
    assert endpoint.secret not in refused.text()
    assert not SecretReveal.objects.exists()


def csrf_header(page) -> dict[str, str]:
    # The cookie goes out once per section (config.cookies); the dashboard's copy is the one.
    [token] = [
        cookie["value"]
        for cookie in page.context.cookies()
        if cookie["name"] == "csrftoken" and cookie["path"] == "/dashboard/"
    ]
    return {"X-CSRFToken": token}


def test_another_tenants_session_gets_404_on_every_endpoint_url_and_changes_nothing(
    page, transactional_db
):
    acme = TenantFactory(slug="acme", name="Acme")
    victim = EndpointFactory(tenant=acme, url="http://127.0.0.1:9/victim")
    globex = TenantFactory(slug="globex", name="Globex")
    EndpointFactory(tenant=globex, url="http://127.0.0.1:9/globex")
    page.goto(link_for(globex))
    page.goto("/dashboard/endpoints/")
    base = f"/dashboard/endpoints/{victim.pk}"

    for path in ("/", "/settings/"):
        assert page.goto(base + path).status == 404
    headers = csrf_header(page)
    for path, form in [
        ("/settings/", {"url": "http://127.0.0.1:9/stolen", "payload_format": "json"}),
        ("/disable/", {}),
        ("/enable/", {}),
        ("/delete/", {"confirm_host": "127.0.0.1"}),
        ("/secret/reveal/", {}),
        ("/secret/rotate/", {"overlap": "0"}),
        ("/test/", {}),
    ]:
        response = page.request.post(base + path, form=form, headers=headers)
        assert response.status == 404, path
        assert victim.secret not in response.text()
    without_csrf = page.request.post(f"{base}/disable/", form={})
    assert without_csrf.status == 403
    fresh = Endpoint.objects.get(pk=victim.pk)
    assert (fresh.url, fresh.is_active, fresh.secret) == (victim.url, True, victim.secret)
    assert not SecretReveal.objects.exists()


@pytest.fixture
def host_site() -> Iterator[ThreadingHTTPServer]:
    """The host application's own site, on another loopback origin: a page framing the portal
    link it was asked to show (`/?src=…`)."""

    class Host(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            src = self.path.split("?src=", 1)[1] if "?src=" in self.path else ""
            body = (
                "<!doctype html><title>Acme Store</title><h1>Acme Store: webhooks</h1>"
                f'<iframe id="portal" src="{src}" width="1200" height="700"></iframe>'
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Host)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_the_portal_renders_framed_by_an_allowed_origin_in_its_theme_and_not_by_others(
    page, live_server, host_site, settings, transactional_db
):
    port = host_site.server_address[1]
    allowed = f"http://localhost:{port}"
    settings.WEBHOOKS_PORTAL_FRAME_ANCESTORS = (allowed,)
    tenant = TenantFactory(slug="acme", name="Acme")
    EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/acme-hook")
    theme = PortalTheme("Acme Store", "", "#0a7f5a")

    page.goto(f"{allowed}/?src={live_server.url}{link_for(tenant, theme=theme)}")
    framed = page.frame_locator("#portal")
    framed.locator("[data-testid=portal-banner]").wait_for()
    assert framed.locator("[data-testid=brand]").inner_text() == "Acme Store"
    [frame] = [f for f in page.frames if f != page.main_frame]
    accent = frame.evaluate(
        "getComputedStyle(document.documentElement).getPropertyValue('--accent')"
    )
    assert accent.strip() == "#0a7f5a"
    framed.locator("nav >> text=Endpoints").click()
    framed.locator("text=acme-hook").wait_for()
    shoot(page, "portal-framed")

    # The same page on an origin not listed: the browser refuses to render the portal in it.
    other = f"http://127.0.0.1:{port}"
    page.goto(f"{other}/?src={live_server.url}{link_for(tenant)}")
    page.wait_for_timeout(1500)
    [frame] = [f for f in page.frames if f != page.main_frame]
    assert frame.url.startswith("chrome-error://")  # what Chromium shows for a refused frame
