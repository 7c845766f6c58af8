"""The admin's delivery lists with many endpoints: the related filters list a few choices, not
every endpoint, and the endpoints' own list links to each one's deliveries."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from config.admin_lists import FewChoicesRelatedFilter
from subscriptions.models import Endpoint
from tests.factories import EndpointFactory, TenantFactory

pytestmark = pytest.mark.django_db
LIMIT = FewChoicesRelatedFilter.CHOICES_LIMIT


def endpoint_choices(html: str) -> list[str]:
    """The ids the endpoint filter links to."""
    return re.findall(r'href="\?endpoint__id__exact=(\d+)"', html)


def bulk(count: int) -> list[Endpoint]:
    tenant = TenantFactory()
    return Endpoint.objects.bulk_create(
        Endpoint(tenant=tenant, url=f"https://e{n:04}.example.com/hook") for n in range(count)
    )


def test_few_endpoints_are_each_a_choice(admin_client):
    endpoints = bulk(3)

    html = admin_client.get("/admin/deliveries/delivery/").content.decode()

    assert sorted(endpoint_choices(html)) == sorted(str(e.pk) for e in endpoints)


def test_many_endpoints_list_only_the_chosen_one_and_where_to_pick_another(admin_client):
    endpoints = bulk(LIMIT + 1)
    chosen = endpoints[17]

    with CaptureQueriesContext(connection) as queries:
        unfiltered = admin_client.get("/admin/deliveries/delivery/").content.decode()
    filtered = admin_client.get(
        f"/admin/deliveries/delivery/?endpoint__id__exact={chosen.pk}"
    ).content.decode()

    assert endpoint_choices(unfiltered) == []
    assert f"Pick one of {LIMIT + 1:,} endpoints…" in unfiltered
    assert 'href="/admin/subscriptions/endpoint/"' in unfiltered
    assert set(endpoint_choices(filtered)) == {str(chosen.pk)}  # other filters keep it too
    endpoint_rows = [q for q in queries if 'FROM "subscriptions_endpoint"' in q["sql"]]
    assert all("LIMIT" in q["sql"] or "COUNT" in q["sql"] for q in endpoint_rows)


def test_a_hostile_choice_is_no_error(admin_client):
    bulk(LIMIT + 1)

    for value in ("abc", "-1", "9" * 30, "１"):
        response = admin_client.get(f"/admin/deliveries/delivery/?endpoint__id__exact={value}")
        assert response.status_code in (200, 302)


def test_each_endpoint_links_to_its_deliveries(admin_client):
    endpoint = EndpointFactory()

    html = admin_client.get("/admin/subscriptions/endpoint/").content.decode()

    assert f'href="/admin/deliveries/delivery/?endpoint__id__exact={endpoint.pk}"' in html
