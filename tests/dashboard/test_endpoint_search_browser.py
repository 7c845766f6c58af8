"""With more endpoints than a select can hold, a member finds one by typing, in a real browser:
in the delivery filters and in the endpoints list."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from dashboard.endpoint_choices import CHOICES_LIMIT
from subscriptions.models import Endpoint
from tests.dashboard.conftest import sign_in
from tests.factories import EventTypeFactory, TenantFactory
from webhooks import send_event

pytestmark = [pytest.mark.services]
PASSWORD = "secret-pass-123"


def shoot(page, name: str) -> None:
    """Keep a screenshot when HOOKLINE_SCREENSHOTS names a folder (for looking at the pages)."""
    if folder := os.environ.get("HOOKLINE_SCREENSHOTS"):
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


@pytest.fixture
def many(transactional_db):
    """A tenant with more endpoints than the select lists, one event delivered to each, and a
    member; another tenant whose endpoint matches the same search."""
    EventTypeFactory(name="order.paid")
    acme = TenantFactory(slug="acme", name="Acme")
    Endpoint.objects.bulk_create(
        Endpoint(tenant=acme, url=f"https://e{n:04}.acme.example/hook")
        for n in range(CHOICES_LIMIT + 20)
    )
    Endpoint.objects.create(tenant=acme, url="https://ledger.acme.example/in")
    theirs = TenantFactory(slug="globex")
    Endpoint.objects.create(tenant=theirs, url="https://ledger.globex.example/in")
    send_event(acme, "order.paid", {"n": 1})
    user = get_user_model().objects.create_user("ana", "ana@example.com", PASSWORD)
    acme.members.add(user)
    return acme


def test_a_member_types_part_of_a_url_picks_the_endpoint_and_sees_only_its_deliveries(page, many):
    sign_in(page, "ana")
    page.goto("/dashboard/deliveries/")
    assert page.locator("#results tbody tr").count() == 50  # a page of every endpoint's

    page.fill(".endpoint-search", "ledger")
    ledger = page.locator("#endpoint-choice option", has_text="ledger.acme.example")
    ledger.wait_for(state="attached")
    assert page.locator("#endpoint-choice option", has_text="globex").count() == 0
    assert "1 matching “ledger”" in page.locator("#endpoint-choice").inner_text()
    shoot(page, "endpoint-search")
    page.select_option("#endpoint-choice", label="https://ledger.acme.example/in")

    page.wait_for_url("**endpoint=*")
    rows = page.locator("#results tbody tr")
    rows.first.wait_for()
    assert rows.count() == 1
    assert "ledger.acme.example" in rows.first.inner_text()
    page.reload()  # the link holds the choice, and the select shows it
    assert page.locator("#endpoint-choice").input_value() == str(
        Endpoint.objects.get(url="https://ledger.acme.example/in").pk
    )
    assert page.locator("#results tbody tr").count() == 1


def test_typing_in_the_endpoint_search_does_not_reload_the_list(page, many):
    sign_in(page, "ana")
    page.goto("/dashboard/deliveries/")
    reloads = []
    page.on("request", lambda r: reloads.append(r.url) if "/dashboard/deliveries/?" in r.url else 0)

    page.fill(".endpoint-search", "e0003")
    page.locator("#endpoint-choice option", has_text="e0003.acme").wait_for(state="attached")
    page.locator("h1").click()  # leaving the box fires its change event

    page.wait_for_timeout(500)
    assert reloads == []


def test_the_endpoints_list_narrows_as_the_member_types(page, many):
    sign_in(page, "ana")
    page.goto("/dashboard/endpoints/")
    assert page.locator("#results tbody tr").count() == 50

    page.locator("input[name=q]").press_sequentially("ledger")
    page.wait_for_url("**q=ledger*")
    page.locator("#results tbody tr").first.wait_for()
    page.wait_for_function("document.querySelectorAll('#results tbody tr').length === 1")

    assert "ledger.acme.example" in page.locator("#results").inner_text()
    assert "globex" not in page.content()
    shoot(page, "endpoints-searched")
    page.select_option("select[name=state]", "disabled")
    page.get_by_text("No endpoints match these filters.").wait_for()
