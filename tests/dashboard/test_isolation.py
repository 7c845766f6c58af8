"""A tenant member reaches nothing of another tenant's through any dashboard page or action."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from deliveries.models import Delivery, ReplayJob
from inbox.models import Inbox, InboxRequest
from subscriptions.models import Endpoint
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def theirs():
    EventTypeFactory(name="order.paid")
    tenant = TenantFactory(slug="theirs")
    endpoint = EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/theirs")
    delivery = Delivery.objects.get(event=send_event(tenant, "order.paid", {}))
    Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.FAILED)
    job = ReplayJob.objects.create(tenant=tenant, endpoint=endpoint, since=delivery.created_at)
    inbox = Inbox.objects.create(tenant=tenant)
    return {"endpoint": endpoint, "delivery": delivery, "job": job, "inbox": inbox}


@pytest.fixture
def member_client(client):
    mine = TenantFactory(slug="mine")
    EndpointFactory(tenant=mine, url="http://127.0.0.1:9/mine")
    user = get_user_model().objects.create_user("ana", password="pw-123456789")
    mine.members.add(user)
    client.force_login(user)
    return client


def snapshot() -> tuple:
    return (
        list(Delivery.objects.values_list("id", "status", "attempt_count", "replay_job_id")),
        list(Endpoint.objects.values_list("id", "is_active", "url")),
        list(ReplayJob.objects.values_list("id", "status")),
        Inbox.objects.count(),
        InboxRequest.objects.count(),
    )


def test_every_page_of_another_tenant_is_404(member_client, theirs):
    pages = [
        f"/dashboard/endpoints/{theirs['endpoint'].pk}/",
        f"/dashboard/deliveries/{theirs['delivery'].pk}/",
        f"/dashboard/replays/{theirs['job'].pk}/",
    ]
    for path in pages:
        assert member_client.get(path).status_code == 404, path


@pytest.mark.pgbouncer
def test_lists_show_nothing_of_another_tenant(member_client, theirs):
    for path in ["/dashboard/", "/dashboard/endpoints/", "/dashboard/deliveries/",
                 "/dashboard/dead-letters/", "/dashboard/inbox/",
                 "/dashboard/deliveries/?tenant=theirs",
                 f"/dashboard/deliveries/?endpoint={theirs['endpoint'].pk}",
                 f"/dashboard/inbox/?inbox={theirs['inbox'].pk}"]:  # fmt: skip
        html = member_client.get(path).content.decode()
        assert "/theirs" not in html, path
        assert theirs["inbox"].token not in html, path
        assert theirs["delivery"].event.public_id not in html, path


def test_no_action_reaches_another_tenant_and_nothing_changes(member_client, theirs):
    before = snapshot()
    endpoint, delivery = theirs["endpoint"].pk, theirs["delivery"].pk
    actions = [
        (f"/dashboard/deliveries/{delivery}/replay/", {}),
        (f"/dashboard/endpoints/{endpoint}/recover/", {"since": "24h"}),
        (f"/dashboard/endpoints/{endpoint}/test/", {"event_type": "order.paid"}),
    ]
    for path, data in actions:
        assert member_client.post(path, data).status_code == 404, path
    member_client.post("/dashboard/deliveries/replay/", {"ids": [delivery]})
    member_client.post("/dashboard/inbox/endpoint/", {"inbox": theirs["inbox"].pk})

    after = snapshot()
    assert after[0] == before[0]
    assert after[2] == before[2]
    assert [row for row in after[1] if row[0] == endpoint] == [
        row for row in before[1] if row[0] == endpoint
    ]


@pytest.mark.parametrize(
    "query",
    ["event_type=order%00paid", "q=msg_%00", "tenant=acme%00", "status%00=failed"],
)
def test_a_nul_character_in_a_query_is_400_not_500(member_client, query):
    response = member_client.get(f"/dashboard/deliveries/?{query}")

    assert response.status_code == 400
    assert b"NUL" in response.content


def test_a_nul_character_in_an_api_query_is_a_json_400(client):
    response = client.get("/api/v1/deliveries/?event_type=order%00paid")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
