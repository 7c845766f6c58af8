"""Deliveries: filters, cursor pagination, detail with attempts, replay, and replay jobs."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from deliveries.batch import deliver_due_batch
from deliveries.models import Delivery
from deliveries.services import replay_job_start
from tests.api.conftest import assert_error_body, db_state
from tests.factories import EndpointFactory, EventTypeFactory
from webhooks.signing import verify

pytestmark = pytest.mark.django_db

FAILED, PENDING, SUCCEEDED = (
    Delivery.Status.FAILED,
    Delivery.Status.PENDING,
    Delivery.Status.SUCCEEDED,
)


def _ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [delivery["id"] for delivery in response.json()["results"]]


# --- Listing and filters --------------------------------------------------------------------------


def test_list_shows_the_tenants_deliveries_newest_first(api, endpoint_a, make_delivery):
    deliveries = [make_delivery(endpoint_a, status) for status in (FAILED, PENDING, SUCCEEDED)]

    response = api.get("/api/v1/deliveries/")

    assert _ids(response) == [d.id for d in reversed(deliveries)]
    first = response.json()["results"][0]
    assert first["status"] == "succeeded"
    assert first["endpoint_id"] == endpoint_a.id
    assert first["event_type"] == "order.paid"
    assert first["event_id"] == deliveries[-1].event.public_id


def test_list_filters_by_status(api, endpoint_a, make_delivery):
    failed = make_delivery(endpoint_a, FAILED)
    make_delivery(endpoint_a, PENDING)
    make_delivery(endpoint_a, SUCCEEDED)

    assert _ids(api.get("/api/v1/deliveries/", {"status": "failed"})) == [failed.id]


def test_list_filters_by_endpoint(api, tenant_a, endpoint_a, make_delivery):
    other = EndpointFactory(tenant=tenant_a, url="http://127.0.0.1:9/other")
    mine = make_delivery(endpoint_a)
    make_delivery(other)

    assert _ids(api.get("/api/v1/deliveries/", {"endpoint": endpoint_a.id})) == [mine.id]


def test_an_endpoint_id_past_the_64_bit_range_finds_nothing(api, endpoint_a, make_delivery):
    make_delivery(endpoint_a)

    assert _ids(api.get("/api/v1/deliveries/", {"endpoint": 2**90})) == []


def test_list_filters_by_event_type(api, endpoint_a, make_delivery):
    user_created = EventTypeFactory(name="user.created")
    make_delivery(endpoint_a)
    user = make_delivery(endpoint_a, event_type=user_created, payload={})

    assert _ids(api.get("/api/v1/deliveries/", {"event_type": "user.created"})) == [user.id]


def test_list_filters_by_creation_time(api, endpoint_a, make_delivery):
    now = timezone.now()
    old = make_delivery(endpoint_a, created_at=now - timedelta(days=2))
    recent = make_delivery(endpoint_a, created_at=now - timedelta(hours=1))
    cut = (now - timedelta(days=1)).isoformat()

    assert _ids(api.get("/api/v1/deliveries/", {"created_after": cut})) == [recent.id]
    assert _ids(api.get("/api/v1/deliveries/", {"created_before": cut})) == [old.id]
    window = {
        "created_after": (now - timedelta(days=3)).isoformat(),
        "created_before": (now - timedelta(days=1)).isoformat(),
        "status": "failed",
        "endpoint": endpoint_a.id,
        "event_type": "order.paid",
    }
    assert _ids(api.get("/api/v1/deliveries/", window)) == [old.id]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "nope"}, "status"),
        ({"endpoint": "abc"}, "endpoint"),
        ({"endpoint": "-1"}, "endpoint"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "2024-13-45"}, "created_before"),
    ],
)
def test_bad_filter_values_are_400(api, endpoint_a, make_delivery, query, field):
    make_delivery(endpoint_a)

    response = api.get("/api/v1/deliveries/", query)

    assert response.status_code == 400
    assert field in assert_error_body(response, "invalid")["fields"]


# --- Cursor pagination ----------------------------------------------------------------------------


@pytest.mark.pgbouncer
def test_walking_every_page_shows_each_delivery_once_newest_first(api, endpoint_a, make_delivery):
    deliveries = [make_delivery(endpoint_a, PENDING) for _ in range(7)]
    seen: list[int] = []
    pages = 0
    url: str | None = "/api/v1/deliveries/?limit=3"

    while url:
        response = api.get(url)
        page = _ids(response)
        assert 0 < len(page) <= 3
        seen += page
        pages += 1
        url = response.json()["next"]
        assert pages <= 5, "pagination does not end"

    assert pages == 3
    assert seen == sorted((d.id for d in deliveries), reverse=True)


def test_the_next_link_keeps_the_filters(api, endpoint_a, make_delivery):
    failed = [make_delivery(endpoint_a, FAILED) for _ in range(3)]
    for _ in range(3):
        make_delivery(endpoint_a, SUCCEEDED)

    first = api.get("/api/v1/deliveries/", {"status": "failed", "limit": 2})
    second = api.get(first.json()["next"])

    assert parse_qs(urlsplit(first.json()["next"]).query)["status"] == ["failed"]
    assert _ids(first) + _ids(second) == [d.id for d in reversed(failed)]
    assert second.json()["next"] is None


def test_a_garbage_cursor_is_404(api, endpoint_a, make_delivery):
    make_delivery(endpoint_a)

    response = api.get("/api/v1/deliveries/", {"cursor": "garbage"})

    assert response.status_code == 404
    assert_error_body(response, "not_found")


def test_a_well_formed_cursor_with_a_bad_position_is_404(api, endpoint_a, make_delivery):
    make_delivery(endpoint_a)
    cursor = base64.b64encode(b"p=abc").decode()

    response = api.get("/api/v1/deliveries/", {"cursor": cursor})

    assert response.status_code == 404


# --- Detail ---------------------------------------------------------------------------------------


def test_detail_shows_the_payload_and_every_attempt(api, tenant_a, order_paid, receiver, settings):
    settings.WEBHOOKS_RETRY_SCHEDULE = (0.0,)
    endpoint = EndpointFactory(tenant=tenant_a, url=receiver.url("/flaky"))
    receiver.script("/flaky", [500, 200])
    payload = {"order_id": "o-7", "amount": 700}
    api.post("/api/v1/events/", {"event_type": "order.paid", "payload": payload}, format="json")
    deliver_due_batch(limit=10)
    deliver_due_batch(limit=10)
    delivery = Delivery.objects.get()

    response = api.get(f"/api/v1/deliveries/{delivery.id}/")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "succeeded"
    assert body["payload"] == payload
    failed, succeeded = body["attempts"]
    assert [failed["number"], succeeded["number"]] == [1, 2]
    assert failed["response_status"] == 500
    assert failed["error_kind"] == "http_status"
    assert "scripted failure" in failed["response_body"]
    assert succeeded["response_status"] == 200
    assert succeeded["error_kind"] == ""
    assert succeeded["response_body"] == '{"ok": true}'
    assert succeeded["response_headers"]["content-type"].startswith("application/json")
    assert succeeded["url"] == receiver.url("/flaky")
    assert isinstance(succeeded["duration_ms"], float)
    assert succeeded["duration_ms"] >= 0
    sent_headers = succeeded["request_headers"]
    assert sent_headers["webhook-id"] == delivery.event.public_id
    assert sent_headers["webhook-signature"].startswith("v1,")
    _, second_request = receiver.requests("/flaky")
    assert second_request.headers["webhook-signature"] == sent_headers["webhook-signature"]
    verify(endpoint.secret, sent_headers, second_request.body)
    assert json.loads(second_request.body)["data"] == payload


def test_detail_of_a_delivery_without_attempts(api, endpoint_a, make_delivery):
    delivery = make_delivery(endpoint_a, PENDING)

    response = api.get(f"/api/v1/deliveries/{delivery.id}/")

    assert response.status_code == 200
    assert response.json()["attempts"] == []
    assert response.json()["payload"] == {"order_id": "o-1"}


def test_an_unknown_delivery_is_404(api, endpoint_a):
    for delivery_id in ("999999999", "abc"):
        response = api.get(f"/api/v1/deliveries/{delivery_id}/")
        assert response.status_code == 404
        assert_error_body(response, "not_found")


# --- Replay ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [FAILED, SUCCEEDED])
def test_replaying_a_finished_delivery_queues_it_again(api, endpoint_a, make_delivery, status):
    delivery = make_delivery(endpoint_a, status)

    response = api.post(f"/api/v1/deliveries/{delivery.id}/replay/")

    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    delivery.refresh_from_db()
    assert delivery.status == PENDING
    assert delivery.finished_at is None
    assert delivery.next_attempt_at <= timezone.now()
    assert delivery.next_trigger == "replay"


def test_replaying_a_pending_delivery_is_409(api, endpoint_a, make_delivery):
    delivery = make_delivery(endpoint_a, PENDING)
    before = db_state()

    response = api.post(f"/api/v1/deliveries/{delivery.id}/replay/")

    assert response.status_code == 409
    assert_error_body(response, "conflict")
    assert db_state() == before


def test_a_replayed_delivery_is_sent_again_with_the_same_webhook_id(
    api, tenant_a, order_paid, receiver, settings
):
    settings.WEBHOOKS_RETRY_SCHEDULE = ()
    EndpointFactory(tenant=tenant_a, url=receiver.url("/down"))
    receiver.script("/down", [503])
    api.post(
        "/api/v1/events/", {"event_type": "order.paid", "payload": {"order_id": "o"}}, format="json"
    )
    deliver_due_batch(limit=10)
    delivery = Delivery.objects.get(status=FAILED)

    assert api.post(f"/api/v1/deliveries/{delivery.id}/replay/").status_code == 202
    deliver_due_batch(limit=10)

    first, again = receiver.requests("/down")
    assert again.headers["webhook-id"] == first.headers["webhook-id"]
    delivery.refresh_from_db()
    assert delivery.status == SUCCEEDED
    assert list(delivery.attempts.values_list("trigger", flat=True)) == ["scheduled", "replay"]


# --- Tenant isolation -----------------------------------------------------------------------------


def test_another_tenants_delivery_is_404(other_api, endpoint_a, make_delivery):
    delivery = make_delivery(endpoint_a)

    response = other_api.get(f"/api/v1/deliveries/{delivery.id}/")

    assert response.status_code == 404
    assert_error_body(response, "not_found")


def test_replaying_another_tenants_delivery_is_404_and_changes_nothing(
    other_api, endpoint_a, make_delivery
):
    make_delivery(endpoint_a)
    delivery = make_delivery(endpoint_a)
    before = db_state()

    response = other_api.post(f"/api/v1/deliveries/{delivery.id}/replay/")

    assert response.status_code == 404
    assert_error_body(response, "not_found")
    assert db_state() == before
    delivery.refresh_from_db()
    assert delivery.status == FAILED


def test_lists_show_only_own_deliveries(api, other_api, endpoint_a, endpoint_b, make_delivery):
    mine = make_delivery(endpoint_a)
    theirs = make_delivery(endpoint_b)

    assert _ids(api.get("/api/v1/deliveries/")) == [mine.id]
    assert _ids(other_api.get("/api/v1/deliveries/")) == [theirs.id]


def test_filtering_on_another_tenants_endpoint_finds_nothing(
    other_api, endpoint_a, endpoint_b, make_delivery
):
    make_delivery(endpoint_a)
    make_delivery(endpoint_b)

    assert _ids(other_api.get("/api/v1/deliveries/", {"endpoint": endpoint_a.id})) == []


# --- Replay jobs ----------------------------------------------------------------------------------


def test_a_replay_job_is_readable_by_its_tenant(api, endpoint_a, make_delivery):
    make_delivery(endpoint_a)
    job = replay_job_start(endpoint=endpoint_a, since=timezone.now() - timedelta(hours=1))

    response = api.get(f"/api/v1/replay-jobs/{job.id}/")

    assert response.status_code == 200
    assert response.json()["id"] == job.id
    assert response.json()["total"] == 1
    assert response.json()["status"] == "queued"
    assert response.json()["endpoint_id"] == endpoint_a.id


def test_another_tenants_replay_job_is_404(other_api, endpoint_a, make_delivery):
    make_delivery(endpoint_a)
    job = replay_job_start(endpoint=endpoint_a, since=timezone.now() - timedelta(hours=1))

    response = other_api.get(f"/api/v1/replay-jobs/{job.id}/")

    assert response.status_code == 404
    assert_error_body(response, "not_found")


def test_an_unknown_replay_job_is_404(api):
    assert api.get("/api/v1/replay-jobs/999999999/").status_code == 404
