"""The endpoints list: filtered by state, event type and a search, a page at a time, in scope."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from dashboard.endpoint_list_views import PAGE_SIZE
from subscriptions.models import Endpoint
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory

pytestmark = pytest.mark.django_db


def listed(html: str) -> list[str]:
    """The URLs the list shows, in order."""
    return re.findall(r'class="mono truncate endpoint-url" href="[^"]+" title="([^"]+)"', html)


def bulk(tenant, count: int, **fields) -> list[Endpoint]:
    return Endpoint.objects.bulk_create(
        Endpoint(tenant=tenant, url=f"https://e{n:04}.example.com/hook", **fields)
        for n in range(count)
    )


def test_the_state_filter_shows_only_endpoints_in_that_state(member, acme):
    EndpointFactory(tenant=acme, url="https://ok.example.com/")
    EndpointFactory(tenant=acme, url="https://failing.example.com/", failing_since=timezone.now())
    EndpointFactory(tenant=acme, url="https://off.example.com/", is_active=False)

    def shown(state: str) -> list[str]:
        return listed(member.get(f"/dashboard/endpoints/?state={state}").content.decode())

    assert shown("active") == ["https://ok.example.com/"]
    assert shown("failing") == ["https://failing.example.com/"]
    assert shown("disabled") == ["https://off.example.com/"]
    assert len(shown("")) == 3
    assert len(shown("bogus")) == 3  # an unknown state is no filter


def test_the_event_type_filter_keeps_its_subscribers_and_those_receiving_every_type(member, acme):
    paid, refunded = EventTypeFactory(name="order.paid"), EventTypeFactory(name="order.refunded")
    EndpointFactory(tenant=acme, url="https://paid.example.com/", event_types=[paid])
    EndpointFactory(tenant=acme, url="https://refunds.example.com/", event_types=[refunded])
    EndpointFactory(tenant=acme, url="https://all.example.com/")

    html = member.get("/dashboard/endpoints/?event_type=order.paid").content.decode()

    assert sorted(listed(html)) == ["https://all.example.com/", "https://paid.example.com/"]


def test_the_search_matches_url_or_description_in_any_case(member, acme):
    EndpointFactory(tenant=acme, url="https://billing.example.com/hook")
    EndpointFactory(tenant=acme, url="https://x.example.com/", description="Billing mirror")
    EndpointFactory(tenant=acme, url="https://crm.example.com/")

    html = member.get("/dashboard/endpoints/?q=BILLING").content.decode()
    nothing = member.get("/dashboard/endpoints/?q=nowhere").content.decode()

    assert sorted(listed(html)) == ["https://billing.example.com/hook", "https://x.example.com/"]
    assert listed(nothing) == []
    assert "No endpoints match these filters." in nothing
    assert "Clear filters" in nothing


def test_the_list_pages_through_every_endpoint_once(member, acme):
    bulk(acme, 2 * PAGE_SIZE + 20)

    first = member.get("/dashboard/endpoints/").content.decode()
    second = member.get("/dashboard/endpoints/?page=2").content.decode()
    third = member.get("/dashboard/endpoints/?page=3").content.decode()

    assert len(listed(first)) == PAGE_SIZE
    assert f"Showing 1–{PAGE_SIZE} of {2 * PAGE_SIZE + 20} endpoints" in first
    assert "page=2" in first
    assert "← Previous" not in first
    assert f"Showing {2 * PAGE_SIZE + 1}–{2 * PAGE_SIZE + 20} of" in third
    assert "Next →" not in third
    every = listed(first) + listed(second) + listed(third)
    assert sorted(every) == sorted(Endpoint.objects.values_list("url", flat=True))


@pytest.mark.parametrize("page", ["999999999", "0", "-1", "abc", "1e9", "９"])
def test_a_page_out_of_range_or_not_a_number_shows_a_real_page(member, acme, page):
    bulk(acme, PAGE_SIZE + 5)

    response = member.get(f"/dashboard/endpoints/?page={page}")

    assert response.status_code == 200
    assert len(listed(response.content.decode())) in (PAGE_SIZE, 5)


def test_filters_and_pages_keep_to_the_members_tenant(member, acme):
    EndpointFactory(tenant=acme, url="https://mine.example.com/")
    bulk(TenantFactory(slug="globex"), PAGE_SIZE + 1)

    html = member.get("/dashboard/endpoints/?q=example").content.decode()

    assert listed(html) == ["https://mine.example.com/"]
    assert "1 endpoint." in html
    assert "Showing" not in html  # one page: no range


def test_an_htmx_request_gets_the_results_alone(member, acme):
    EndpointFactory(tenant=acme, url="https://ok.example.com/")

    html = member.get("/dashboard/endpoints/?q=ok", HTTP_HX_REQUEST="true").content.decode()

    assert html.lstrip().startswith('<div id="results">')
    assert listed(html) == ["https://ok.example.com/"]


def test_a_tenant_without_endpoints_is_offered_to_add_one_not_filters(member):
    html = member.get("/dashboard/endpoints/").content.decode()

    assert "No endpoints yet." in html
    assert 'name="state"' not in html
