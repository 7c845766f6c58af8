"""The backlog and ordering keys, seen in the dashboard and the admin: each tenant's pending
deliveries by what they wait for, and which delivery a waiting one waits behind."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard import stats
from dashboard.access import Viewer
from deliveries.models import Delivery
from deliveries.selectors import Backlog, backlogs_by_tenant
from subscriptions.models import Endpoint, Tenant
from subscriptions.services import endpoint_disable
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event

pytestmark = pytest.mark.django_db

# Visible ASCII, so a valid key: the pages must show it as text.
HOSTILE_KEY = "<b>ord&\"1'</b>"


def emit(tenant: Tenant, event_type: str, *, key: str | None = None) -> Delivery:
    return Delivery.objects.get(event=send_event(tenant, event_type, {}, ordering_key=key))


def endpoint_for(tenant: Tenant, event_type: str, **fields: object) -> Endpoint:
    """An endpoint that wants only `event_type`, so each emit reaches exactly one endpoint."""
    return EndpointFactory(
        tenant=tenant,
        url=f"http://127.0.0.1:9/{tenant.slug}/{event_type}",
        event_types=[EventTypeFactory(name=event_type)],
        **fields,
    )


@pytest.fixture
def acme():
    """A tenant with pending deliveries of every kind, and some finished ones."""
    tenant = TenantFactory(slug="acme", name="Acme")
    for name in ("order.paid", "order.retried", "order.keyed"):
        endpoint_for(tenant, name)
    endpoint_for(tenant, "order.held", circuit_open_until=timezone.now() + timedelta(hours=1))
    parked = endpoint_for(tenant, "order.parked")

    due = [emit(tenant, "order.paid"), emit(tenant, "order.paid")]
    retried = emit(tenant, "order.retried")
    Delivery.objects.filter(pk=retried.pk).update(
        attempt_count=1, next_attempt_at=timezone.now() + timedelta(minutes=5)
    )
    head = emit(tenant, "order.keyed", key="ord_1")
    waiting = [emit(tenant, "order.keyed", key="ord_1") for _ in range(2)]
    held = emit(tenant, "order.held")
    emit(tenant, "order.parked")
    endpoint_disable(endpoint_ids=[parked.pk], reason="test")
    finished = [emit(tenant, "order.paid"), emit(tenant, "order.paid")]
    Delivery.objects.filter(pk=finished[0].pk).update(status=Delivery.Status.SUCCEEDED)
    Delivery.objects.filter(pk=finished[1].pk).update(status=Delivery.Status.FAILED)
    return {"tenant": tenant, "due": due, "head": head, "waiting": waiting, "held": held}


ACME_BACKLOG = Backlog(due=3, scheduled=1, held=1, parked=1, waiting=2)


@pytest.fixture
def globex():
    tenant = TenantFactory(slug="globex", name="Globex")
    endpoint_for(tenant, "invoice.sent")
    for _ in range(4):
        emit(tenant, "invoice.sent")
    return tenant


def signed_in(client, username: str, *, tenant: Tenant | None = None, staff: bool = False):
    user = get_user_model().objects.create_user(username, password="pw-123456789", is_staff=staff)
    if tenant is not None:
        tenant.members.add(user)
    client.force_login(user)
    return client


def backlog_shown(html: str) -> dict[str, int]:
    """The overview's backlog cards, as numbers."""
    found = re.findall(r'data-testid="backlog-(\w+)">(?:<a [^>]*>)?([\d,]+)', html)
    return {name: int(value.replace(",", "")) for name, value in found}


def test_backlog_counts_each_pending_delivery_once_by_what_it_waits_for(acme, globex):
    backlogs = backlogs_by_tenant(tenants=[acme["tenant"].pk, globex.pk], at=timezone.now())

    assert backlogs == {acme["tenant"].pk: ACME_BACKLOG, globex.pk: Backlog(due=4)}
    assert (
        ACME_BACKLOG.total
        == Delivery.objects.filter(
            endpoint__tenant=acme["tenant"], status=Delivery.Status.PENDING
        ).count()
    )


def test_backlog_moves_from_held_to_due_when_the_circuit_pause_ends(acme):
    later = timezone.now() + timedelta(hours=2)

    [backlog] = backlogs_by_tenant(tenants=[acme["tenant"].pk], at=later).values()

    # The held delivery is due at the end of the pause, and so is the retry by then.
    assert (backlog.held, backlog.scheduled, backlog.due) == (0, 0, 5)


def test_overview_shows_the_members_backlog_and_nothing_of_another_tenant(client, acme, globex):
    signed_in(client, "ana", tenant=acme["tenant"])

    html = client.get("/dashboard/").content.decode()

    assert backlog_shown(html) == {"total": 8, "due": 3, "scheduled": 1, "held": 1,
                                   "parked": 1, "waiting": 2}  # fmt: skip


def test_another_tenants_member_sees_only_their_own_backlog_and_not_these_deliveries(
    client, acme, globex
):
    signed_in(client, "bob", tenant=globex)

    html = client.get("/dashboard/").content.decode()

    assert backlog_shown(html) == {"total": 4, "due": 4, "scheduled": 0, "held": 0,
                                   "parked": 0, "waiting": 0}  # fmt: skip
    for delivery in (acme["waiting"][0], acme["head"]):
        assert client.get(f"/dashboard/deliveries/{delivery.pk}/").status_code == 404
    listing = client.get("/dashboard/deliveries/?status=waiting").content.decode()
    assert "Waiting on key" not in listing


def test_staff_without_a_tenant_chosen_see_every_tenants_backlog(client, acme, globex):
    signed_in(client, "ops", staff=True)

    html = client.get("/dashboard/").content.decode()

    assert backlog_shown(html)["total"] == 12
    assert backlog_shown(html)["due"] == 7


def test_the_overviews_backlog_and_retrying_count_are_one_query_of_deliveries(acme, globex):
    viewer = Viewer(tenants=Tenant.objects.all(), tenant=None, is_staff=True)

    with CaptureQueriesContext(connection) as queries:
        summary = stats.summary(viewer, timezone.now())

    of_deliveries = [q for q in queries if '"deliveries_delivery"' in q["sql"]]
    assert len(of_deliveries) == 1
    assert summary.backlog == ACME_BACKLOG + Backlog(due=4)
    free = Delivery.objects.filter(status=Delivery.Status.PENDING, waiting_on_key=False)
    assert summary.outcomes.pending + summary.outcomes.retrying == free.count()


def test_waiting_delivery_page_says_what_it_waits_behind_and_links_to_it(client, acme):
    signed_in(client, "ana", tenant=acme["tenant"])
    head, waiting = acme["head"], acme["waiting"][1]

    html = client.get(f"/dashboard/deliveries/{waiting.pk}/").content.decode()

    line = re.search(r'data-testid="waiting-on-key">(.*?)</div>', html, re.S)
    assert line is not None
    text = " ".join(re.sub(r"<[^>]+>", "", line.group(1)).split())
    assert text.startswith(f"Waiting behind delivery #{head.pk} (the head of ordering key ord_1)")
    assert f'href="/dashboard/deliveries/{head.pk}/"' in line.group(1)
    assert 'data-testid="ordering-key">ord_1<' in html
    assert "◷ Waiting on key" in html
    assert "/replay/" not in html  # nothing offers to send it now
    head_page = client.get(f"/dashboard/deliveries/{head.pk}/").content.decode()
    assert 'data-testid="waiting-on-key"' not in head_page
    assert 'data-testid="ordering-key">ord_1<' in head_page


def test_an_ordering_key_is_shown_as_text(client, acme):
    signed_in(client, "ana", tenant=acme["tenant"])
    emit(acme["tenant"], "order.keyed", key=HOSTILE_KEY)
    waiting = emit(acme["tenant"], "order.keyed", key=HOSTILE_KEY)

    html = client.get(f"/dashboard/deliveries/{waiting.pk}/").content.decode()

    assert HOSTILE_KEY not in html
    assert "&lt;b&gt;ord&amp;&quot;1&#x27;&lt;/b&gt;" in html


@pytest.mark.pgbouncer
def test_deliveries_list_marks_waiting_deliveries_and_filters_them(client, acme):
    signed_in(client, "ana", tenant=acme["tenant"])
    waiting_ids = {delivery.pk for delivery in acme["waiting"]}

    listing = client.get("/dashboard/deliveries/").content.decode()
    for delivery_id in waiting_ids:
        row = re.search(rf'<tr id="delivery-{delivery_id}">(.*?)</tr>', listing, re.S)
        assert row is not None
        assert "Waiting on key" in row.group(1)
        assert 'name="ids"' not in row.group(1)  # not offered for replay
    head_row = re.search(rf'<tr id="delivery-{acme["head"].pk}">(.*?)</tr>', listing, re.S)
    assert head_row is not None
    assert "Pending" in head_row.group(1)

    def listed(status: str) -> set[int]:
        html = client.get(f"/dashboard/deliveries/?status={status}").content.decode()
        return {int(n) for n in re.findall(r'<tr id="delivery-(\d+)">', html)}

    assert listed("waiting") == waiting_ids
    assert not listed("pending") & waiting_ids


def test_admin_tenant_list_shows_each_tenants_backlog(admin_client, acme, globex):
    html = admin_client.get("/admin/subscriptions/tenant/").content.decode()

    rows = {slug: row for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.S)
            for slug in ("acme", "globex") if f">{slug}<" in row}  # fmt: skip
    assert "3 due · 1 later · 1 held by a circuit · 1 parked · 2 waiting on a key" in rows["acme"]
    assert ">4 due<" in rows["globex"]


def test_admin_tenant_list_reads_the_backlog_in_one_query_whatever_the_page_size(admin_client):
    def queries_for_tenants(count: int) -> int:
        for n in range(count):
            tenant = TenantFactory(slug=f"t{count}-{n}")
            endpoint_for(tenant, f"e.t{count}n{n}")
            emit(tenant, f"e.t{count}n{n}")
        admin_client.get("/admin/subscriptions/tenant/")  # the session and content types
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get("/admin/subscriptions/tenant/").status_code == 200
        return len(queries)

    assert queries_for_tenants(2) == queries_for_tenants(8)


def test_admin_tenant_page_shows_its_backlog(admin_client, acme):
    html = admin_client.get(f"/admin/subscriptions/tenant/{acme['tenant'].pk}/change/")

    assert "3 due · 1 later · 1 held by a circuit · 1 parked · 2 waiting on a key" in (
        html.content.decode()
    )


def test_admin_delivery_page_links_to_the_delivery_it_waits_behind(admin_client, acme):
    head, waiting = acme["head"], acme["waiting"][0]

    html = admin_client.get(f"/admin/deliveries/delivery/{waiting.pk}/change/").content.decode()

    link = f'<a href="/admin/deliveries/delivery/{head.pk}/change/">delivery #{head.pk}</a>'
    assert f"Waiting behind {link} (the head of ordering key <code>ord_1</code>)" in html


def test_admin_delivery_page_escapes_the_ordering_key(admin_client, acme):
    emit(acme["tenant"], "order.keyed", key=HOSTILE_KEY)
    waiting = emit(acme["tenant"], "order.keyed", key=HOSTILE_KEY)

    html = admin_client.get(f"/admin/deliveries/delivery/{waiting.pk}/change/").content.decode()

    assert HOSTILE_KEY not in html
    assert "<code>&lt;b&gt;ord&amp;&quot;1&#x27;&lt;/b&gt;</code>" in html


def test_admin_delivery_list_filters_and_marks_waiting_deliveries(admin_client, acme):
    html = admin_client.get("/admin/deliveries/delivery/?waiting_on_key=yes").content.decode()

    shown = {int(n) for n in re.findall(r"/admin/deliveries/delivery/(\d+)/change/", html)}
    assert shown == {delivery.pk for delivery in acme["waiting"]}
    assert html.count("pending (waiting on its key)") == 2
