"""Testing an endpoint's filter on its dashboard page, in a real browser against a live server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from tests.dashboard.conftest import sign_in
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event

pytestmark = [pytest.mark.services]

# Set to a folder to keep a screenshot of the filter panel, to look at how it reads.
SCREENSHOTS = os.environ.get("HOOKLINE_SCREENSHOTS")


def test_a_member_tries_filters_against_the_last_events_and_sees_each_result(page):
    EventTypeFactory(name="order.paid")
    tenant = TenantFactory(slug="acme", name="Acme")
    endpoint = EndpointFactory(tenant=tenant, filter='data.currency == "EUR"')
    send_event(tenant, "order.paid", {"amount": 20000, "currency": "EUR"})
    send_event(tenant, "order.paid", {"amount": 50, "currency": "EUR"})
    send_event(tenant, "order.paid", {"amount": 30000, "currency": "USD"})
    send_event(tenant, "order.paid", {"currency": "EUR"})  # no amount
    user = get_user_model().objects.create_user("ana", password="secret-pass-123")
    tenant.members.add(user)
    sign_in(page, "ana")

    page.goto(f"/dashboard/endpoints/{endpoint.pk}/")
    assert page.input_value("#filter-expression") == 'data.currency == "EUR"'
    page.fill("#filter-expression", 'data.amount > 10000 && data.currency == "EUR"')
    page.click("text=Test this filter against the last 20 events")

    page.wait_for_selector("[data-testid=filter-result]")
    results = [row.inner_text().split("\t")[0].strip()
               for row in page.query_selector_all("[data-testid=filter-result]")]  # fmt: skip
    assert [result.split("\n")[0] for result in results] == [
        "▲ Error", "– No match", "– No match", "✓ Match"
    ]  # fmt: skip
    assert "missing field 'amount'" in page.inner_text(".filter-error")  # why the last failed
    assert "1 of the last 4 events match." in page.inner_text("[data-testid=filter-summary]")
    assert page.url.endswith(f"/dashboard/endpoints/{endpoint.pk}/")  # htmx: the page stayed

    page.fill("#filter-expression", "data.amount >")
    page.click("text=Test this filter against the last 20 events")

    problem = page.wait_for_selector("[data-testid=filter-problem]")
    assert "line 1, column 14: unexpected end" in problem.inner_text()
    assert page.query_selector("[data-testid=filter-result]") is None
    endpoint.refresh_from_db()
    assert endpoint.filter == 'data.currency == "EUR"'  # trying saves nothing

    page.click("[data-testid=save-filter]")  # the bad one: refused, and said why
    refused = page.wait_for_selector("[data-testid=filter-problem] >> text=so it was not saved")
    assert "line 1, column 14" in refused.inner_text()
    endpoint.refresh_from_db()
    assert endpoint.filter == 'data.currency == "EUR"'

    page.fill("#filter-expression", 'data.amount > 10000 && data.currency == "EUR"')
    page.click("[data-testid=save-filter]")

    page.wait_for_selector("text=Filter saved")
    assert page.url.endswith(f"/dashboard/endpoints/{endpoint.pk}/")
    assert page.input_value("#filter-expression") == 'data.amount > 10000 && data.currency == "EUR"'
    if SCREENSHOTS:
        page.locator(".filter-test").screenshot(path=str(Path(SCREENSHOTS) / "filter-saved.png"))
    endpoint.refresh_from_db()
    assert endpoint.filter == 'data.amount > 10000 && data.currency == "EUR"'
