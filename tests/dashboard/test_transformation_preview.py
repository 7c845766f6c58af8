"""The endpoint page previews a transformation on a recent event and saves it, for its tenant
alone, showing hostile payloads and expressions as text."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from django.utils.html import escape
from rest_framework.test import APIClient

from deliveries.batch import deliver_due_batch
from deliveries.models import Delivery
from subscriptions.models import Endpoint
from subscriptions.services import api_key_create
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event
from webhooks.models import Event

pytestmark = pytest.mark.django_db

CHAT = '{"text": "Order " & data.order_id & " paid"}'
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def mine():
    EventTypeFactory(name="order.paid")
    tenant = TenantFactory(slug="mine", name="Mine")
    endpoint = EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/mine", transformation=CHAT)
    return {"tenant": tenant, "endpoint": endpoint}


@pytest.fixture
def theirs():
    tenant = TenantFactory(slug="theirs")
    endpoint = EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/theirs")
    event = send_event(tenant, "order.paid", {"order_id": "their-secret-order"})
    return {"tenant": tenant, "endpoint": endpoint, "event": event}


@pytest.fixture
def member(client, mine):
    user = get_user_model().objects.create_user("ana", password="pw-123456789")
    mine["tenant"].members.add(user)
    client.force_login(user)
    return client


def _preview(client, endpoint, expression, event=None, **headers):
    data = {"transformation": expression}
    if event is not None:
        data["event"] = str(event.pk) if isinstance(event, Event) else event
    return client.post(
        f"/dashboard/endpoints/{endpoint.pk}/transformation/preview/", data, **headers
    )


def test_the_endpoint_page_offers_the_saved_transformation_and_recent_events(member, mine, theirs):
    older = send_event(mine["tenant"], "order.paid", {"order_id": "o-1"})
    newest = send_event(mine["tenant"], "order.paid", {"order_id": "o-2"})

    page = member.get(f"/dashboard/endpoints/{mine['endpoint'].pk}/").content.decode()

    assert 'id="transformation"' in page
    assert "{&quot;text&quot;: &quot;Order &quot; &amp; data.order_id" in page
    assert f'<option value="{newest.pk}" selected>' in page
    assert f'<option value="{older.pk}">' in page
    assert f'value="{theirs["event"].pk}"' not in page


def test_a_preview_shows_the_body_before_and_after(member, mine):
    event = send_event(mine["tenant"], "order.paid", {"order_id": "o-7", "amount": 4200})

    response = _preview(member, mine["endpoint"], CHAT, event, **HTMX)

    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html  # a fragment for htmx
    assert "&quot;order_id&quot;: &quot;o-7&quot;" in html  # before, pretty-printed
    assert "&quot;text&quot;: &quot;Order o-7 paid&quot;" in html  # after
    assert event.public_id in html


def test_a_preview_without_htmx_is_the_whole_page_keeping_the_typed_text(member, mine):
    event = send_event(mine["tenant"], "order.paid", {"order_id": "o-7"})

    response = _preview(member, mine["endpoint"], '{"id": data.order_id}', event)

    html = response.content.decode()
    assert "<html" in html
    assert "{&quot;id&quot;: data.order_id}</textarea>" in html
    assert 'data-testid="unsaved"' in html
    assert "&quot;id&quot;: &quot;o-7&quot;" in html


@pytest.mark.parametrize("payload_format", ["xml", "form"])
def test_a_preview_shows_the_endpoints_format_after_the_transformation(
    member, mine, payload_format
):
    Endpoint.objects.filter(pk=mine["endpoint"].pk).update(payload_format=payload_format)
    mine["endpoint"].refresh_from_db()
    event = send_event(mine["tenant"], "order.paid", {"order_id": "o-7"})

    html = _preview(member, mine["endpoint"], CHAT, event, **HTMX).content.decode()

    if payload_format == "xml":
        assert "&lt;webhook&gt;&lt;text&gt;Order o-7 paid&lt;/text&gt;&lt;/webhook&gt;" in html
    else:
        assert "text=Order+o-7+paid" in html


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ('{"text": }', "Not a valid JSONata expression: "),
        ("data.missing", "gave no result (undefined)"),
        ("$match(data.order_id, /o/)", "Regular expressions are not available"),
        ("data\x00", "cannot contain the NUL character"),
        ("x" * 10_001, "at most 10,000 characters"),
    ],
)
def test_a_failing_preview_says_why_and_that_nothing_would_be_sent(
    member, mine, expression, problem
):
    event = send_event(mine["tenant"], "order.paid", {"order_id": "o-7"})

    response = _preview(member, mine["endpoint"], expression, event, **HTMX)

    assert response.status_code == 200
    html = response.content.decode()
    assert "Nothing would be sent." in html
    assert problem in html


def test_a_runaway_preview_is_stopped_in_time(member, mine):
    event = send_event(mine["tenant"], "order.paid", {"order_id": "o-7"})
    started = time.monotonic()

    response = _preview(member, mine["endpoint"], "($f := function() { $f() }; $f())", event)

    assert time.monotonic() - started < 1.0
    assert "80 ms budget and was stopped" in response.content.decode()


def test_hostile_payloads_and_expressions_are_shown_as_text(member, mine):
    payload = {"order_id": "<script>alert('payload')</script>", "x": "</pre><b>bold</b>"}
    event = send_event(mine["tenant"], "order.paid", payload)
    expression = '{"html": "<img src=x onerror=alert(1)>" & data.order_id, "x": data.x}'

    html = _preview(member, mine["endpoint"], expression, event).content.decode()

    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert "<b>bold" not in html
    assert "&lt;script&gt;alert(&#x27;payload&#x27;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_another_tenants_endpoint_and_events_are_404(member, mine, theirs):
    mine_event = send_event(mine["tenant"], "order.paid", {"order_id": "o-1"})

    assert _preview(member, theirs["endpoint"], CHAT, mine_event).status_code == 404
    response = _preview(member, mine["endpoint"], "$", theirs["event"])
    assert response.status_code == 404
    assert b"their-secret-order" not in response.content
    path = f"/dashboard/endpoints/{theirs['endpoint'].pk}/transformation/"
    assert member.get(path).status_code == 404
    assert member.post(f"{path}save/", {"transformation": "$"}).status_code == 404
    assert Endpoint.objects.get(pk=theirs["endpoint"].pk).transformation == ""


@pytest.mark.parametrize("event_id", ["", "abc", "-1", "1" * 40, "1\x00", "１２"])
def test_an_event_id_that_is_not_one_is_404_not_500(member, mine, event_id):
    send_event(mine["tenant"], "order.paid", {"order_id": "o-1"})

    assert _preview(member, mine["endpoint"], CHAT, event_id).status_code == 404


def test_a_member_saves_a_transformation_that_applies_from_then_on(member, mine):
    endpoint = mine["endpoint"]

    response = member.post(
        f"/dashboard/endpoints/{endpoint.pk}/transformation/save/",
        {"transformation": '  {"id": data.order_id}\r\n'},
        follow=True,
    )

    assert response.status_code == 200
    assert b"Transformation saved: it applies from the next attempt on." in response.content
    endpoint.refresh_from_db()
    assert endpoint.transformation == '{"id": data.order_id}'


def test_saving_an_empty_transformation_removes_it(member, mine):
    endpoint = mine["endpoint"]

    member.post(f"/dashboard/endpoints/{endpoint.pk}/transformation/save/", {"transformation": ""})

    endpoint.refresh_from_db()
    assert endpoint.transformation == ""


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("data[", "(at position 5)"),
        ("data\x00", "cannot contain the NUL character"),
        ("x" * 10_001, "at most 10,000 characters"),
    ],
)
def test_a_refused_save_keeps_the_text_says_why_and_changes_nothing(
    member, mine, expression, problem
):
    endpoint = mine["endpoint"]

    response = member.post(
        f"/dashboard/endpoints/{endpoint.pk}/transformation/save/",
        {"transformation": expression},
    )

    assert response.status_code == 400
    html = response.content.decode()
    assert "Transformation not saved: " in html
    assert problem in html
    endpoint.refresh_from_db()
    assert endpoint.transformation == CHAT


def test_a_read_only_portal_session_previews_but_may_not_save(client, mine):
    _, key = api_key_create(tenant=mine["tenant"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    link = api.post("/api/v1/portal-links/", {}, format="json").json()
    client.get(link["url"].split("testserver", 1)[1])
    event = send_event(mine["tenant"], "order.paid", {"order_id": "o-7"})
    endpoint = mine["endpoint"]

    page = client.get(f"/dashboard/endpoints/{endpoint.pk}/").content.decode()
    preview = _preview(client, endpoint, CHAT, event, **HTMX)
    saved = client.post(
        f"/dashboard/endpoints/{endpoint.pk}/transformation/save/", {"transformation": "$"}
    )

    assert "Save transformation" not in page
    assert "Order o-7 paid" in preview.content.decode()
    assert saved.status_code == 403
    endpoint.refresh_from_db()
    assert endpoint.transformation == CHAT


def test_the_transformation_page_previews_the_saved_one_on_the_latest_event(member, mine):
    send_event(mine["tenant"], "order.paid", {"order_id": "o-9"})

    html = member.get(f"/dashboard/endpoints/{mine['endpoint'].pk}/transformation/").content

    assert "&quot;text&quot;: &quot;Order o-9 paid&quot;" in html.decode()
    assert f"{escape(CHAT)}</textarea>" in html.decode()


def test_a_failed_transformation_reads_as_such_in_the_lists_and_the_attempt(member, mine, settings):
    settings.WEBHOOKS_RETRY_SCHEDULE = (60.0,)
    Endpoint.objects.filter(pk=mine["endpoint"].pk).update(transformation="data.missing")
    event = send_event(mine["tenant"], "order.paid", {"order_id": "o-1"})
    deliver_due_batch(limit=10)
    delivery = Delivery.objects.get(event=event)

    listed = member.get("/dashboard/deliveries/").content.decode()
    detail = member.get(f"/dashboard/deliveries/{delivery.pk}/").content.decode()

    assert ">transform</span>" in listed
    assert "gave no result (undefined)" in detail
    assert "The endpoint&#x27;s transformation failed, so nothing was sent" in detail
