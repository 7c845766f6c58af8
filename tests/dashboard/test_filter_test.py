"""The endpoint page's "Test this filter against the last 20 events", without a browser."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from deliveries.models import Delivery
from subscriptions.models import TEST_EVENT_TYPE
from subscriptions.services import api_key_create
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event
from webhooks.models import Event
from webhooks.services import event_send_test

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant():
    EventTypeFactory(name="order.paid")
    EventTypeFactory(name="user.created")
    return TenantFactory(slug="acme")


@pytest.fixture
def member(client, tenant):
    user = get_user_model().objects.create_user("ana", password="pw-123456789")
    tenant.members.add(user)
    client.force_login(user)
    return client


def results(response) -> list[tuple[str, str]]:
    """(result, event type) per row, newest event first."""
    page = response.content.decode()
    rows = re.findall(r'<tr data-testid="filter-result">(.*?)</tr>', page, re.S)
    return [
        (re.search(r"(Match|No match|Error)</span>", row)[1],
         re.search(r'<td class="mono">([^<]+)</td>', row)[1])
        for row in rows
    ]  # fmt: skip


def try_filter(client, endpoint, expression: str | None, **headers):
    data = {} if expression is None else {"filter": expression}
    return client.post(f"/dashboard/endpoints/{endpoint.pk}/filter-test/", data, **headers)


def test_each_recent_event_shows_match_no_match_or_error(member, tenant):
    endpoint = EndpointFactory(tenant=tenant)
    send_event(tenant, "order.paid", {"amount": 20000, "currency": "EUR"})
    send_event(tenant, "order.paid", {"amount": 50, "currency": "EUR"})
    send_event(tenant, "user.created", {"id": "u1"})
    event_send_test(endpoint=endpoint)  # Hookline's own, which no filter decides

    response = try_filter(member, endpoint, "data.amount > 10000", HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert results(response) == [
        ("Error", "user.created"), ("No match", "order.paid"), ("Match", "order.paid")
    ]  # fmt: skip
    page = response.content.decode()
    assert "1 of the last 3 events match." in page
    assert "1 could not be evaluated, which counts as no match." in page
    assert "missing field &#x27;amount&#x27;" in page  # why user.created could not be evaluated
    assert "<html" not in page  # htmx gets the results alone
    assert TEST_EVENT_TYPE not in page


def test_only_the_last_20_events_of_the_types_the_endpoint_wants_are_tried(member, tenant):
    paid = EventTypeFactory(name="order.paid")
    endpoint = EndpointFactory(tenant=tenant, event_types=[paid])
    for n in range(25):
        send_event(tenant, "order.paid", {"n": n})
    send_event(tenant, "user.created", {"n": 99})  # a type the endpoint does not want
    send_event(TenantFactory(), "order.paid", {"n": 100})  # another tenant's
    newest_20 = Event.objects.filter(tenant=tenant, event_type=paid).order_by("-id")[:20]

    response = try_filter(member, endpoint, "data.n >= 15", HTTP_HX_REQUEST="true")

    rows = results(response)
    assert len(rows) == 20
    assert rows == [("Match", "order.paid")] * 10 + [("No match", "order.paid")] * 10
    page = response.content.decode()
    assert all(event.public_id in page for event in newest_20)
    assert '"n":4}' not in page


def test_without_an_expression_posted_the_saved_filter_is_tried(member, tenant):
    endpoint = EndpointFactory(tenant=tenant, filter='data.currency == "EUR"')
    send_event(tenant, "order.paid", {"currency": "EUR"})
    send_event(tenant, "order.paid", {"currency": "USD"})

    response = try_filter(member, endpoint, None)

    assert results(response) == [("No match", "order.paid"), ("Match", "order.paid")]
    page = response.content.decode()
    assert "<html" in page  # without htmx: a whole page, with the form to try again
    assert "data.currency == &quot;EUR&quot;</textarea>" in page


def test_an_empty_filter_matches_everything(member, tenant):
    endpoint = EndpointFactory(tenant=tenant, filter="data.amount > 1")
    send_event(tenant, "order.paid", {})

    response = try_filter(member, endpoint, "  ", HTTP_HX_REQUEST="true")

    assert results(response) == [("Match", "order.paid")]
    assert "Empty filter: all 1 events match." in response.content.decode()


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("data.amount >", "line 1, column 14: unexpected end"),
        ("order.amount > 1", "line 1, column 1: unknown variable &#x27;order&#x27;"),
        ("data.x == '\x00'", "The filter cannot contain the NUL character."),
        ("data.x == 1 || " * 10_000 + "true", "The filter is 150,004 characters long"),
    ],
)
def test_a_bad_expression_shows_why_and_tries_nothing(member, tenant, expression, message):
    endpoint = EndpointFactory(tenant=tenant)
    send_event(tenant, "order.paid", {})

    response = try_filter(member, endpoint, expression, HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    page = response.content.decode()
    assert message in page
    assert results(response) == []


def test_trying_a_filter_changes_and_sends_nothing(member, tenant):
    endpoint = EndpointFactory(tenant=tenant, filter="data.amount > 1")
    send_event(tenant, "order.paid", {"amount": 5})
    before = list(Delivery.objects.values_list("id", "status"))

    try_filter(member, endpoint, "true")

    endpoint.refresh_from_db()
    assert endpoint.filter == "data.amount > 1"
    assert list(Delivery.objects.values_list("id", "status")) == before


def test_the_endpoint_page_shows_the_filter_and_the_form(member, tenant):
    endpoint = EndpointFactory(tenant=tenant, filter='data.currency == "EUR"')

    page = member.get(f"/dashboard/endpoints/{endpoint.pk}/").content.decode()

    assert "Test this filter against the last 20 events" in page
    assert "data.currency == &quot;EUR&quot;</textarea>" in page
    assert f'hx-post="/dashboard/endpoints/{endpoint.pk}/filter-test/"' in page


def test_another_tenants_endpoint_is_a_404(member):
    theirs = EndpointFactory(tenant=TenantFactory(slug="theirs"), filter="true")
    send_event(theirs.tenant, "order.paid", {"secret": "their-data"})

    response = try_filter(member, theirs, "true")

    assert response.status_code == 404
    assert b"their-data" not in response.content


def test_a_post_without_the_csrf_token_is_refused(tenant):
    endpoint = EndpointFactory(tenant=tenant)
    user = get_user_model().objects.create_user("bo", password="pw-123456789")
    tenant.members.add(user)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    response = try_filter(client, endpoint, "true")

    assert response.status_code == 403


def test_signed_out_visitors_are_sent_to_sign_in(client, tenant):
    endpoint = EndpointFactory(tenant=tenant)

    response = try_filter(client, endpoint, "true")

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


# --- saving the filter ---------------------------------------------------------------------------


def save_filter(client, endpoint, expression: str, **headers):
    return client.post(
        f"/dashboard/endpoints/{endpoint.pk}/filter/save/", {"filter": expression}, **headers
    )


def test_a_member_saves_a_filter_and_the_next_events_are_chosen_by_it(member, tenant):
    endpoint = EndpointFactory(tenant=tenant)

    response = save_filter(member, endpoint, '  data.currency == "EUR"\r\n')

    assert response.status_code == 302
    assert response["Location"] == f"/dashboard/endpoints/{endpoint.pk}/#filter"
    endpoint.refresh_from_db()
    assert endpoint.filter == 'data.currency == "EUR"'
    page = member.get(response["Location"]).content.decode()
    assert "Filter saved" in page
    send_event(tenant, "order.paid", {"currency": "EUR"})
    send_event(tenant, "order.paid", {"currency": "USD"})
    assert [d.event.payload for d in Delivery.objects.filter(endpoint=endpoint)] == [
        {"currency": "EUR"}
    ]


def test_saving_over_htmx_redirects_the_page_and_an_empty_filter_removes_it(member, tenant):
    endpoint = EndpointFactory(tenant=tenant, filter="data.n > 1")

    response = save_filter(member, endpoint, "", HTTP_HX_REQUEST="true")

    assert response["HX-Redirect"] == f"/dashboard/endpoints/{endpoint.pk}/"
    endpoint.refresh_from_db()
    assert endpoint.filter == ""


@pytest.mark.parametrize(
    "expression", ["data.amount >", "x\x00", "unknown_name > 1", "data.n > 1 && " * 200]
)
def test_a_refused_filter_is_not_saved_and_says_why(member, tenant, expression):
    endpoint = EndpointFactory(tenant=tenant, filter="data.n > 1")

    page = save_filter(member, endpoint, expression)
    partial = save_filter(member, endpoint, expression, HTTP_HX_REQUEST="true")

    assert page.status_code == 400
    assert "Filter not saved: " in page.content.decode()
    assert partial.status_code == 200  # htmx swaps the reason in where test results go
    assert "so it was not saved" in partial.content.decode()
    endpoint.refresh_from_db()
    assert endpoint.filter == "data.n > 1"


def test_another_tenants_endpoint_cannot_be_given_a_filter(member):
    theirs = EndpointFactory(tenant=TenantFactory(slug="theirs"))

    response = save_filter(member, theirs, "false")

    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.filter == ""


def test_a_read_only_portal_session_tests_filters_but_may_not_save_them(client, tenant):
    endpoint = EndpointFactory(tenant=tenant)
    _, key = api_key_create(tenant=tenant)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    link = api.post("/api/v1/portal-links/", {}, format="json").json()
    client.get(link["url"].split("testserver", 1)[1])

    page = client.get(f"/dashboard/endpoints/{endpoint.pk}/").content.decode()
    tested = try_filter(client, endpoint, "true", HTTP_HX_REQUEST="true")
    saved = save_filter(client, endpoint, "false")

    assert "Save filter" not in page
    assert tested.status_code == 200
    assert saved.status_code == 403
    endpoint.refresh_from_db()
    assert endpoint.filter == ""
