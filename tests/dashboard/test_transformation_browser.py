"""The transformation preview in a real browser: typed, previewed side by side, fixed and saved."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from subscriptions.models import Endpoint
from tests.dashboard.conftest import sign_in
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event

pytestmark = [pytest.mark.services]

CHAT = '{"text": "Order " & data.order_id & " paid"}'
# Set to a folder to keep a screenshot of the preview, to look at how it reads.
SCREENSHOTS = os.environ.get("HOOKLINE_SCREENSHOTS")


def test_member_previews_a_transformation_side_by_side_fixes_it_and_saves_it(page):
    EventTypeFactory(name="order.paid")
    tenant = TenantFactory(slug="acme", name="Acme")
    endpoint = EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/chat")
    send_event(tenant, "order.paid", {"order_id": "ord_1", "amount": 4200})
    newest = send_event(tenant, "order.paid", {"order_id": "<b>ord_2</b>", "amount": 990})
    user = get_user_model().objects.create_user("ana", password="secret-pass-123")
    tenant.members.add(user)
    sign_in(page, "ana")
    page.goto(f"/dashboard/endpoints/{endpoint.pk}/")

    page.fill("#transformation-text", '{"text": "Order " & data.order_id & " paid"')
    page.click("#transformation-panel button:has-text('Preview')")

    error = page.locator("[data-testid=preview-error]")
    error.wait_for()
    assert "Not a valid JSONata expression" in error.inner_text()
    assert page.url.endswith(f"/dashboard/endpoints/{endpoint.pk}/")  # htmx: the page stayed

    page.fill("#transformation-text", CHAT)
    page.click("#transformation-panel button:has-text('Preview')")

    after = page.locator("[data-testid=preview-after]")
    after.wait_for()
    assert after.inner_text() == '{\n  "text": "Order <b>ord_2</b> paid"\n}'
    before = page.locator("[data-testid=preview-before]").inner_text()
    assert '"order_id": "<b>ord_2</b>"' in before
    assert newest.public_id in page.locator("#transformation-result").inner_text()
    assert page.locator("#transformation-result b").count() == 0  # the payload stayed text
    boxes = [
        page.locator(f"[data-testid=preview-{side}]").bounding_box() for side in ("before", "after")
    ]
    assert boxes[0]["x"] < boxes[1]["x"]  # side by side
    assert abs(boxes[0]["y"] - boxes[1]["y"]) < 2
    if SCREENSHOTS:
        page.locator("#transformation-panel").screenshot(
            path=str(Path(SCREENSHOTS) / "transformation-preview.png")
        )

    page.select_option(
        "#transformation-event",
        label=page.locator("#transformation-event option").nth(1).inner_text(),
    )
    page.click("#transformation-panel button:has-text('Preview')")
    page.wait_for_selector("[data-testid=preview-after]:has-text('Order ord_1 paid')")

    page.click("#transformation-panel button:has-text('Save transformation')")
    page.wait_for_selector("text=Transformation saved: it applies from the next attempt on.")
    endpoint.refresh_from_db()
    assert endpoint.transformation == CHAT
    assert page.locator("#transformation-text").input_value() == CHAT
    assert Endpoint.objects.get(pk=endpoint.pk).transformation == CHAT
