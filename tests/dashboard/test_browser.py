"""The dashboard and the admin in a real browser, against a live server and a real worker."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model

from deliveries.batch import deliver_due_batch
from deliveries.models import Delivery
from subscriptions.models import Endpoint
from subscriptions.services import endpoint_rotate_secret
from tests.dashboard.conftest import admin_sign_in, sign_in
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event

pytestmark = [pytest.mark.services]
PASSWORD = "secret-pass-123"


def make_user(username: str, *, staff: bool = False, tenant=None):
    user = get_user_model().objects.create_user(
        username, f"{username}@example.com", PASSWORD, is_staff=staff, is_superuser=staff
    )
    if tenant is not None:
        tenant.members.add(user)
    return user


def dead_delivery(tenant, url: str, settings) -> Delivery:
    """A delivery whose only attempt failed, with no retries left: a dead letter."""
    settings.WEBHOOKS_RETRY_SCHEDULE = ()
    event = send_event(tenant, "order.paid", {"order_id": "o-dead"})
    deliver_due_batch(limit=100)
    return Delivery.objects.get(event=event, endpoint__url=url)


def test_operator_creates_an_endpoint_in_the_admin_and_sees_a_test_event_delivered(
    page, receiver, start_worker
):
    start_worker()  # a worker sends test events; the admin waits for its attempt
    tenant = TenantFactory(slug="acme", name="Acme")
    make_user("ops", staff=True)
    admin_sign_in(page, "ops")

    page.goto("/admin/subscriptions/endpoint/add/")
    page.select_option("#id_tenant", label="acme")
    page.fill("#id_url", receiver.url("/admin-made"))
    page.click("input[name=_save]")

    page.wait_for_selector("text=shown only now")
    endpoint = Endpoint.objects.get(tenant=tenant)
    assert endpoint.secret in page.content()
    assert all(endpoint.secret not in c["value"] for c in page.context.cookies())
    page.click("text=Continue")
    page.wait_for_url("**/admin/subscriptions/endpoint/")
    assert endpoint.secret not in page.content()  # shown once
    page.check(f"input[name=_selected_action][value='{endpoint.pk}']")
    page.select_option("select[name=action]", "send_test_event")
    page.click("button[name=index]")
    page.wait_for_selector("text=Test event delivered")
    [request] = receiver.requests("/admin-made")
    assert b'"type":"hookline.test"' in request.body


def test_member_sends_a_test_event_from_the_dashboard_and_a_worker_delivers_it(
    page, receiver, start_worker, settings
):
    start_worker()
    settings.WEBHOOKS_TEST_WAIT_SECONDS = 0.0  # answer at once: the delivery page follows it
    tenant = TenantFactory(slug="acme", name="Acme")
    endpoint = EndpointFactory(tenant=tenant, url=receiver.url("/from-dashboard"))
    make_user("ana", tenant=tenant)
    sign_in(page, "ana")

    page.goto(f"/dashboard/endpoints/{endpoint.pk}/")
    page.click("form.test-form button[type=submit]")

    page.wait_for_selector("text=Test event queued: a worker is sending it.")
    # The delivery page refreshes itself until the worker's attempt is there.
    page.wait_for_selector("[data-testid=delivery-status] >> text=Delivered")
    [request] = receiver.requests("/from-dashboard")
    assert b'"type":"hookline.test"' in request.body


def test_user_finds_a_failed_delivery_reads_its_attempts_replays_it_and_sees_it_succeed(
    page, receiver, start_worker, settings
):
    tenant = TenantFactory(slug="acme", name="Acme")
    EventTypeFactory(name="order.paid")
    url = receiver.url("/flaky")
    EndpointFactory(tenant=tenant, url=url)
    receiver.script("/flaky", [503])
    delivery = dead_delivery(tenant, url, settings)
    make_user("ana", tenant=tenant)
    start_worker()  # only now: the dead letter above is made in-process, without racing it

    sign_in(page, "ana")
    page.click("nav >> text=Dead letters")
    page.click(f"#delivery-{delivery.pk} >> text=Dead")
    page.wait_for_selector("[data-testid=attempt]")
    assert "HTTP 503" in page.inner_text("[data-testid=attempt]")
    page.click("button:has-text('Replay')")
    page.wait_for_selector("text=Replay queued")

    for _ in range(30):
        if "Delivered" in page.inner_text("[data-testid=delivery-status]"):
            break
        page.wait_for_timeout(500)
        page.reload()
    assert "Delivered" in page.inner_text("[data-testid=delivery-status]")
    assert len(page.query_selector_all("[data-testid=attempt]")) == 2
    assert receiver.webhook_ids() == [delivery.event.public_id] * 2


def test_bulk_replay_shows_progress_and_finishes(page, receiver, start_worker, settings):
    tenant = TenantFactory(slug="acme", name="Acme")
    EventTypeFactory(name="order.paid")
    url = receiver.url("/down")
    endpoint = EndpointFactory(tenant=tenant, url=url)
    receiver.script("/down", [500] * 40)
    settings.WEBHOOKS_RETRY_SCHEDULE = ()
    for n in range(40):
        send_event(tenant, "order.paid", {"n": n})
    deliver_due_batch(limit=100)
    assert Delivery.objects.filter(status="failed").count() == 40
    make_user("ana", tenant=tenant)
    start_worker()

    sign_in(page, "ana")
    page.goto("/dashboard/dead-letters/")
    page.click(f"button[data-open-dialog=recover-{endpoint.pk}]")
    page.check(f"#recover-{endpoint.pk} input[value='24h']")
    page.click(f"#recover-{endpoint.pk} button[type=submit]")

    page.wait_for_url(re.compile(r".*/dashboard/replays/\d+/"))
    page.wait_for_selector("[data-testid=replay-status]:has-text('Finished')", timeout=40_000)
    assert page.inner_text("[data-testid=replay-delivered]") == "40"
    assert page.inner_text("[data-testid=replay-failed]") == "0"
    assert Delivery.objects.filter(status="succeeded").count() == 40


def test_member_sees_nothing_of_another_tenant_even_by_guessing_urls(page, transactional_db):
    EventTypeFactory(name="order.paid")
    mine, theirs = TenantFactory(slug="mine", name="Mine"), TenantFactory(slug="theirs")
    EndpointFactory(tenant=mine, url="http://127.0.0.1:9/mine")
    their_endpoint = EndpointFactory(tenant=theirs, url="http://127.0.0.1:9/theirs")
    send_event(mine, "order.paid", {})
    their_delivery = Delivery.objects.get(event=send_event(theirs, "order.paid", {}))
    make_user("ana", tenant=mine)

    sign_in(page, "ana")
    for path in ("/dashboard/", "/dashboard/endpoints/", "/dashboard/deliveries/",
                 "/dashboard/dead-letters/", "/dashboard/deliveries/?tenant=theirs"):  # fmt: skip
        page.goto(path)
        assert "/theirs" not in page.content(), path
    assert "/mine" in page.content()
    for path in (f"/dashboard/deliveries/{their_delivery.pk}/",
                 f"/dashboard/endpoints/{their_endpoint.pk}/"):  # fmt: skip
        assert page.goto(path).status == 404, path
    response = page.request.post(f"/dashboard/deliveries/{their_delivery.pk}/replay/")
    assert response.status in (403, 404)


def test_endpoint_page_shows_header_values_masked_and_when_each_replaced_secret_stops(
    page, transactional_db
):
    token = "Bearer sk_live_9f8e7d6c5b4a3210abcd"
    tenant = TenantFactory(slug="acme", name="Acme")
    endpoint = EndpointFactory(tenant=tenant, headers={"Authorization": token, "X-Region": "eu-1"})
    endpoint_rotate_secret(endpoint=endpoint, overlap_seconds=3600)
    endpoint_rotate_secret(endpoint=endpoint, overlap_seconds=7200)
    make_user("ana", tenant=tenant)

    sign_in(page, "ana")
    page.goto(f"/dashboard/endpoints/{endpoint.pk}/")

    assert token not in page.content()
    assert "eu-1" not in page.content()
    assert page.locator("text=Authorization: ••••abcd").count() == 1
    assert page.locator("text=X-Region: ••••").count() == 1
    assert page.locator(".previous-secret").count() == 2


def test_member_follows_a_waiting_delivery_to_the_one_it_waits_behind(page, transactional_db):
    tenant = TenantFactory(slug="acme", name="Acme")
    EventTypeFactory(name="order.paid")
    EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/keyed")
    head, _, last = (
        Delivery.objects.get(event=send_event(tenant, "order.paid", {"n": n}, ordering_key="ord_1"))
        for n in range(3)
    )
    make_user("ana", tenant=tenant)

    sign_in(page, "ana")
    assert page.inner_text("[data-testid=backlog-due]") == "1"
    assert page.inner_text("[data-testid=backlog-waiting]") == "2"
    page.click("[data-testid=backlog-waiting] a")
    page.wait_for_url("**/dashboard/deliveries/?status=waiting")
    assert page.locator("tbody tr").count() == 2
    page.click(f"#delivery-{last.pk} >> text=Waiting on key")

    banner = page.inner_text("[data-testid=waiting-on-key]")
    assert f"Waiting behind delivery #{head.pk} (the head of ordering key ord_1)" in banner
    assert page.locator("button:has-text('Replay')").count() == 0
    page.click(f"[data-testid=waiting-on-key] >> text=delivery #{head.pk}")
    page.wait_for_url(f"**/dashboard/deliveries/{head.pk}/")
    assert "Pending" in page.inner_text("[data-testid=delivery-status]")
    assert page.locator("[data-testid=waiting-on-key]").count() == 0
