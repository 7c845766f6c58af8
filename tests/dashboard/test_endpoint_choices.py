"""The Endpoint filter of the delivery lists: every endpoint while there are few; past that, a
search that fills the select, never an option per endpoint on the page."""

from __future__ import annotations

import re

import pytest

from dashboard.endpoint_choices import CHOICES_LIMIT, SEARCH_LIMIT
from subscriptions.models import Endpoint
from tests.factories import EndpointFactory, TenantFactory

pytestmark = pytest.mark.django_db


def options(html: str) -> dict[str, str]:
    """The Endpoint select's options with a value, by value."""
    select = re.search(r'<select name="endpoint" id="endpoint-choice">(.*?)</select>', html, re.S)
    source = select.group(1) if select else html
    return dict(re.findall(r'<option value="(\d+)"(?: selected)?>([^<]*)</option>', source))


def bulk(tenant, count: int, host: str = "example.com") -> list[Endpoint]:
    return Endpoint.objects.bulk_create(
        Endpoint(tenant=tenant, url=f"https://e{n:04}.{host}/hook") for n in range(count)
    )


def test_few_endpoints_are_all_offered_and_no_search_box(member, acme):
    bulk(acme, CHOICES_LIMIT)

    html = member.get("/dashboard/deliveries/").content.decode()

    assert len(options(html)) == CHOICES_LIMIT
    assert "endpoint-search" not in html


@pytest.mark.parametrize("path", ["/dashboard/deliveries/", "/dashboard/dead-letters/"])
def test_many_endpoints_give_a_search_box_and_only_the_chosen_one(member, acme, path):
    endpoints = bulk(acme, CHOICES_LIMIT + 1)
    chosen = endpoints[40]

    html = member.get(f"{path}?endpoint={chosen.pk}").content.decode()
    unfiltered = member.get(path).content.decode()

    assert 'class="endpoint-search"' in html
    assert options(html) == {str(chosen.pk): chosen.url}
    assert options(unfiltered) == {}
    assert endpoints[0].url not in unfiltered


def test_the_search_finds_by_url_description_or_id_and_keeps_the_choice(member, acme):
    endpoints = bulk(acme, CHOICES_LIMIT + 1)
    described = EndpointFactory(tenant=acme, url="https://x.example.org/", description="Ledger")
    chosen = endpoints[7]

    def found(search: str) -> dict[str, str]:
        query = {"search": search, "endpoint": chosen.pk}
        return options(member.get("/dashboard/endpoints/choices/", query).content.decode())

    assert found("e0012") == {str(endpoints[12].pk): endpoints[12].url, str(chosen.pk): chosen.url}
    assert found("LEDGER") == {str(described.pk): described.url, str(chosen.pk): chosen.url}
    assert str(endpoints[99].pk) in found(str(endpoints[99].pk))


def test_a_broad_search_lists_a_capped_number_and_says_so(member, acme):
    bulk(acme, CHOICES_LIMIT + 1)

    html = member.get("/dashboard/endpoints/choices/", {"search": "example"}).content.decode()

    assert len(options(html)) == SEARCH_LIMIT
    assert f"More than {SEARCH_LIMIT} matching “example”: type more of the URL" in html


def test_the_search_never_offers_another_tenants_endpoints(member, acme):
    bulk(acme, CHOICES_LIMIT + 1)
    theirs = EndpointFactory(tenant=TenantFactory(slug="globex"), url="https://globex.example/")

    by_url = member.get("/dashboard/endpoints/choices/", {"search": "globex"}).content.decode()
    by_id = member.get(
        "/dashboard/endpoints/choices/", {"search": str(theirs.pk), "endpoint": theirs.pk}
    ).content.decode()
    page = member.get(f"/dashboard/deliveries/?endpoint={theirs.pk}").content.decode()

    assert options(by_url) == {}
    assert options(by_id) == {}
    assert "globex.example" not in page


def test_the_choices_need_a_signed_in_user(client, acme):
    EndpointFactory(tenant=acme, url="https://secret.example.com/")

    response = client.get("/dashboard/endpoints/choices/", {"search": "secret"})

    assert response.status_code == 302
    assert "secret.example.com" not in response.content.decode()
