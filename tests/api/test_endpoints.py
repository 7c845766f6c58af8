"""Endpoints: CRUD, validation, secret rotation, test events, recovery, and tenant isolation."""

from __future__ import annotations

import base64
import json
import threading
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone
from standardwebhooks import Webhook, WebhookVerificationError

from deliveries.batch import deliver_due_batch
from deliveries.models import Delivery, ReplayJob
from deliveries.services import replay_job_run
from subscriptions.models import Endpoint
from subscriptions.services import api_key_create
from tests.api.conftest import assert_error_body, client_for, db_state
from tests.factories import EndpointFactory, EventTypeFactory
from webhooks.signing import VerificationError, verify

pytestmark = pytest.mark.django_db

DAY = 24 * 3600


def _secret(key_bytes: int) -> str:
    return "whsec_" + base64.b64encode(b"k" * key_bytes).decode()


def _create(api, **fields):
    return api.post(
        "/api/v1/endpoints/", {"url": "http://127.0.0.1:9/hook", **fields}, format="json"
    )


# --- Create, read, list ---------------------------------------------------------------------------


def test_create_stores_the_endpoint_and_returns_its_secret_once(api, tenant_a, order_paid):
    response = _create(
        api,
        description="Orders",
        event_types=["order.paid"],
        headers={"X-Team": "billing"},
        rate_limit=5,
    )

    assert response.status_code == 201, response.content
    body = response.json()
    endpoint = Endpoint.objects.get(id=body["id"])
    assert endpoint.tenant == tenant_a
    assert endpoint.url == "http://127.0.0.1:9/hook"
    assert endpoint.description == "Orders"
    assert [t.name for t in endpoint.event_types.all()] == ["order.paid"]
    assert endpoint.headers == {"X-Team": "billing"}
    assert endpoint.rate_limit == 5
    assert body["secret"].startswith("whsec_")
    assert body["secret"] == endpoint.secret
    assert body["event_types"] == ["order.paid"]
    assert body["is_active"] is True


def test_retrieve_and_list_never_include_the_secret(api, endpoint_a):
    detail = api.get(f"/api/v1/endpoints/{endpoint_a.id}/")
    listed = api.get("/api/v1/endpoints/")

    assert detail.status_code == 200
    assert detail.json()["url"] == endpoint_a.url
    assert listed.status_code == 200
    assert [e["id"] for e in listed.json()["results"]] == [endpoint_a.id]
    for text in (detail.content.decode(), listed.content.decode()):
        assert "secret" not in text
        assert endpoint_a.secret not in text


def test_the_list_is_paged_oldest_first_and_next_walks_every_endpoint_once(api, tenant_a):
    created = [EndpointFactory(tenant=tenant_a, url=f"http://127.0.0.1:9/{n}").id for n in range(7)]
    EndpointFactory(url="http://127.0.0.1:9/someone-else")

    seen, pages, url = [], 0, "/api/v1/endpoints/?limit=3"
    while url:
        response = api.get(url)
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"results", "next", "previous", "next_cursor", "previous_cursor"}
        assert len(body["results"]) <= 3
        seen += [endpoint["id"] for endpoint in body["results"]]
        pages, url = pages + 1, body["next"]

    assert seen == created
    assert pages == 3


def test_the_list_has_a_default_page_size_and_caps_the_limit(api, tenant_a, settings):
    settings.WEBHOOKS_MAX_ENDPOINTS_PER_TENANT = 0
    Endpoint.objects.bulk_create(
        Endpoint(tenant=tenant_a, url=f"http://127.0.0.1:9/{n}") for n in range(260)
    )

    assert len(api.get("/api/v1/endpoints/").json()["results"]) == 50
    assert len(api.get("/api/v1/endpoints/?limit=200").json()["results"]) == 200
    assert api.get("/api/v1/endpoints/?limit=1000").status_code == 400  # as the schema says


def test_a_garbage_endpoint_cursor_is_a_json_404(api, endpoint_a):
    response = api.get("/api/v1/endpoints/?cursor=cD1hYmM%3D")

    assert response.status_code == 404
    assert_error_body(response, "not_found")


# --- The limit of endpoints per tenant ------------------------------------------------------------


def test_creating_past_the_tenants_limit_is_400_and_stores_nothing(api, other_api, settings):
    settings.WEBHOOKS_MAX_ENDPOINTS_PER_TENANT = 2
    assert [_create(api).status_code for _ in range(2)] == [201, 201]
    before = db_state()

    response = _create(api, description="one too many")

    assert response.status_code == 400
    detail = assert_error_body(response, "invalid")["detail"]
    assert "already has 2 endpoints" in detail
    assert db_state() == before
    assert _create(other_api).status_code == 201  # the limit is per tenant


def test_deleting_an_endpoint_frees_a_place_under_the_limit(api, settings):
    settings.WEBHOOKS_MAX_ENDPOINTS_PER_TENANT = 1
    first = _create(api).json()["id"]
    assert _create(api).status_code == 400

    assert api.delete(f"/api/v1/endpoints/{first}/").status_code == 204

    assert _create(api).status_code == 201


@pytest.mark.services
def test_concurrent_creations_never_pass_the_limit(transactional_db, settings):
    settings.WEBHOOKS_MAX_ENDPOINTS_PER_TENANT = 3
    tenant = EndpointFactory().tenant  # one endpoint already: two places left
    keys = [api_key_create(tenant=tenant, name=f"k{n}")[1] for n in range(8)]
    start, statuses = threading.Barrier(len(keys)), []

    def create(key: str) -> None:
        client = client_for(key)
        start.wait()
        try:
            statuses.append(_create(client).status_code)
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=create, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [201, 201] + [400] * 6
    assert Endpoint.objects.filter(tenant=tenant).count() == 3


def test_a_given_valid_secret_is_kept(api):
    secret = _secret(32)

    response = _create(api, secret=secret)

    assert response.status_code == 201
    assert response.json()["secret"] == secret
    assert Endpoint.objects.get(id=response.json()["id"]).secret == secret


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("not-a-secret", id="no-prefix"),
        pytest.param("whsec_!!!not base64!!!", id="not-base64"),
        pytest.param(_secret(10), id="too-short"),
        pytest.param(_secret(65), id="too-long"),
        pytest.param("whsec_", id="empty-key"),
        pytest.param(12345, id="a-number"),
    ],
)
def test_an_invalid_given_secret_is_400_and_nothing_stored(api, secret):
    response = _create(api, secret=secret)

    assert response.status_code == 400
    assert "secret" in assert_error_body(response, "invalid")["fields"]
    assert not Endpoint.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "ftp://127.0.0.1/hook",
        "file:///etc/passwd",
        "http://[::1",
        "http://127.0.0.1:99999/hook",
        "http://user:pass@127.0.0.1/hook",
        "http:///hook",
        "",
    ],
)
def test_an_invalid_url_is_400_and_nothing_stored(api, url):
    response = _create(api, url=url)

    assert response.status_code == 400
    assert "url" in assert_error_body(response, "invalid")["fields"]
    assert not Endpoint.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://10.1.2.3/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/hook",
        "http://localhost:9/hook",
    ],
)
def test_a_private_address_outside_the_allowlist_is_400(api, settings, url):
    settings.WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST = ()

    response = _create(api, url=url)

    assert response.status_code == 400
    assert "url" in assert_error_body(response, "invalid")["fields"]
    assert not Endpoint.objects.exists()


def test_a_private_address_in_the_allowlist_is_accepted(api):
    assert _create(api, url="http://127.0.0.1:9/hook").status_code == 201


def test_unknown_or_archived_event_types_are_400(api, order_paid):
    EventTypeFactory(name="order.old", archived=True)

    for names in (["order.paid", "order.nope"], ["order.old"], ["order\x00paid"]):
        response = _create(api, event_types=names)

        assert response.status_code == 400, names
        assert "event_types" in assert_error_body(response, "invalid")["fields"]
    assert not Endpoint.objects.exists()


@pytest.mark.parametrize(
    "headers",
    [
        {"webhook-id": "msg_forged"},
        {"Webhook-Signature": "v1,forged"},
        {"WEBHOOK-TIMESTAMP": "1"},
        {"Content-Type": "text/plain"},
        {"Host": "evil.example"},
        {"Content-Length": "0"},
        {"X-Split": "a\r\nInjected: yes"},
        {"X-Split": "a\nb"},
        {"Bad Name": "x"},
        {"X-Number": 5},
        ["X-List"],
    ],
)
def test_headers_hookline_sets_or_that_break_lines_are_400(api, headers):
    response = _create(api, headers=headers)

    assert response.status_code == 400
    assert "headers" in assert_error_body(response, "invalid")["fields"]
    assert not Endpoint.objects.exists()


# --- Custom headers: refused names, masked values -------------------------------------------------

TOKEN = "Bearer sk_live_9f8e7d6c5b4a3210abcd"


@pytest.mark.parametrize(
    "name",
    ["Connection", "upgrade", "TE", "Trailer", "keep-alive", "Expect", "Proxy-Authorization",
     "proxy-connection", "HOST", "content-length", "Transfer-Encoding", "content-TYPE",
     "User-Agent", "Webhook-Id"],
)  # fmt: skip
def test_hop_by_hop_framing_and_hooklines_own_headers_are_400_naming_the_header(api, name):
    response = _create(api, headers={"X-Fine": "1", name: "x"})

    assert response.status_code == 400
    body = assert_error_body(response, "invalid")
    assert "headers" in body["fields"]
    assert repr(name) in body["detail"]
    assert not Endpoint.objects.exists()


def test_header_values_are_returned_masked_to_the_last_four_characters(api):
    created = _create(api, headers={"Authorization": TOKEN, "X-Short": "abc123"})
    endpoint_id = created.json()["id"]

    detail = api.get(f"/api/v1/endpoints/{endpoint_id}/")
    listed = api.get("/api/v1/endpoints/")

    for response in (created, detail, listed):
        assert TOKEN.encode() not in response.content
        assert b"abc123" not in response.content
    assert detail.json()["headers"] == {"Authorization": "••••abcd", "X-Short": "••••"}
    assert listed.json()["results"][0]["headers"] == {
        "Authorization": "••••abcd",
        "X-Short": "••••",
    }
    assert Endpoint.objects.get(id=endpoint_id).headers == {
        "Authorization": TOKEN,
        "X-Short": "abc123",
    }


def test_patch_headers_replaces_the_set_and_a_masked_value_sent_back_keeps_the_stored_one(api):
    endpoint_id = _create(api, headers={"Authorization": TOKEN, "X-Old": "gone-soon"}).json()["id"]
    shown = api.get(f"/api/v1/endpoints/{endpoint_id}/").json()["headers"]

    response = api.patch(
        f"/api/v1/endpoints/{endpoint_id}/",
        {"headers": {"Authorization": shown["Authorization"], "X-New": "fresh"}},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["headers"] == {"Authorization": "••••abcd", "X-New": "••••"}
    assert Endpoint.objects.get(id=endpoint_id).headers == {
        "Authorization": TOKEN,
        "X-New": "fresh",
    }


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": "••••zzzz"}, {"X-Other": "••••abcd"}, {"Authorization": "••••"}],
)
def test_a_masked_value_that_is_not_the_stored_one_is_400_and_changes_nothing(api, headers):
    endpoint_id = _create(api, headers={"Authorization": TOKEN}).json()["id"]
    before = db_state()

    response = api.patch(f"/api/v1/endpoints/{endpoint_id}/", {"headers": headers}, format="json")

    assert response.status_code == 400
    body = assert_error_body(response, "invalid")
    assert "masked value" in body["detail"]
    assert db_state() == before


@pytest.mark.django_db(transaction=True)
def test_a_delivery_sends_the_full_header_value_and_records_every_custom_value_masked(
    api, order_paid, receiver
):
    created = _create(
        api, url=receiver.url("/auth"), headers={"Authorization": TOKEN, "X-Shop": "shop-42-xyzw"}
    ).json()
    api.post("/api/v1/events/", {"event_type": "order.paid", "payload": {"order_id": "1"}},
             format="json")  # fmt: skip

    assert deliver_due_batch(limit=10) == 1

    [request] = receiver.requests("/auth")
    assert request.headers["authorization"] == TOKEN
    assert request.headers["x-shop"] == "shop-42-xyzw"
    [delivery] = api.get(f"/api/v1/deliveries/?endpoint={created['id']}").json()["results"]
    recorded = api.get(f"/api/v1/deliveries/{delivery['id']}/").json()["attempts"][0]
    assert recorded["request_headers"]["Authorization"] == "••••abcd"
    assert recorded["request_headers"]["X-Shop"] == "••••xyzw"
    assert recorded["request_headers"]["webhook-id"] == request.headers["webhook-id"]
    assert TOKEN not in json.dumps(recorded)
    assert "shop-42-xyzw" not in json.dumps(recorded)


def test_empty_event_types_subscribe_to_every_type(api, order_paid):
    EventTypeFactory(name="user.created")
    created = _create(api, event_types=[])
    assert created.json()["event_types"] == []

    for event_type, payload in (("order.paid", {"order_id": "1"}), ("user.created", {})):
        emitted = api.post(
            "/api/v1/events/", {"event_type": event_type, "payload": payload}, format="json"
        )
        assert emitted.json()["deliveries"] == 1


# --- Update and delete ----------------------------------------------------------------------------


def test_put_replaces_the_endpoint(api, endpoint_a, order_paid):
    response = api.put(
        f"/api/v1/endpoints/{endpoint_a.id}/",
        {
            "url": "http://127.0.0.1:9/new",
            "description": "New",
            "event_types": ["order.paid"],
            "headers": {"X-New": "1"},
            "rate_limit": 3,
        },
        format="json",
    )

    assert response.status_code == 200, response.content
    endpoint_a.refresh_from_db()
    assert endpoint_a.url == "http://127.0.0.1:9/new"
    assert endpoint_a.description == "New"
    assert [t.name for t in endpoint_a.event_types.all()] == ["order.paid"]
    assert endpoint_a.headers == {"X-New": "1"}
    assert endpoint_a.rate_limit == 3
    assert "secret" not in response.json()


def test_patch_changes_only_the_given_fields(api, endpoint_a):
    response = api.patch(
        f"/api/v1/endpoints/{endpoint_a.id}/", {"description": "Renamed"}, format="json"
    )

    assert response.status_code == 200
    endpoint_a.refresh_from_db()
    assert endpoint_a.description == "Renamed"
    assert endpoint_a.url == "http://127.0.0.1:9/a"


@pytest.mark.parametrize(
    "change",
    [
        {"url": "ftp://127.0.0.1/x"},
        {"headers": {"webhook-id": "forged"}},
        {"event_types": ["order.nope"]},
        {"rate_limit": -1},
    ],
)
def test_an_invalid_update_is_400_and_changes_nothing(api, endpoint_a, change):
    before = db_state()

    response = api.patch(f"/api/v1/endpoints/{endpoint_a.id}/", change, format="json")

    assert response.status_code == 400
    assert_error_body(response, "invalid")
    assert db_state() == before


def test_an_update_to_a_private_address_is_400(api, endpoint_a, settings):
    settings.WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST = ()

    response = api.patch(
        f"/api/v1/endpoints/{endpoint_a.id}/", {"url": "http://10.0.0.1/x"}, format="json"
    )

    assert response.status_code == 400
    endpoint_a.refresh_from_db()
    assert endpoint_a.url == "http://127.0.0.1:9/a"


def test_patch_is_active_false_disables_and_true_enables_again(api, endpoint_a):
    disabled = api.patch(f"/api/v1/endpoints/{endpoint_a.id}/", {"is_active": False}, format="json")

    assert disabled.status_code == 200
    assert disabled.json()["is_active"] is False
    assert disabled.json()["disabled_reason"]
    endpoint_a.refresh_from_db()
    assert endpoint_a.is_active is False
    assert endpoint_a.disabled_reason
    assert endpoint_a.disabled_at is not None

    enabled = api.patch(f"/api/v1/endpoints/{endpoint_a.id}/", {"is_active": True}, format="json")

    assert enabled.status_code == 200
    assert enabled.json()["is_active"] is True
    endpoint_a.refresh_from_db()
    assert endpoint_a.is_active is True
    assert endpoint_a.disabled_reason == ""
    assert endpoint_a.disabled_at is None


def test_delete_removes_the_endpoint(api, endpoint_a):
    response = api.delete(f"/api/v1/endpoints/{endpoint_a.id}/")

    assert response.status_code == 204
    assert not Endpoint.objects.filter(id=endpoint_a.id).exists()
    assert api.get(f"/api/v1/endpoints/{endpoint_a.id}/").status_code == 404


# --- Secret rotation ------------------------------------------------------------------------------


def test_rotate_secret_returns_a_new_secret_and_keeps_the_old_one_for_a_day(api, endpoint_a):
    old = endpoint_a.secret

    response = api.post(f"/api/v1/endpoints/{endpoint_a.id}/rotate-secret/", {}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["secret"].startswith("whsec_")
    assert body["secret"] != old
    expires = datetime.fromisoformat(body["previous_secret_expires_at"])
    assert abs(expires - (timezone.now() + timedelta(days=1))) < timedelta(minutes=1)
    endpoint_a.refresh_from_db()
    assert endpoint_a.secret == body["secret"]
    assert endpoint_a.signing_secrets() == [body["secret"], old]


@pytest.mark.parametrize("overlap", [0, 60, 7 * DAY])
def test_rotate_secret_accepts_an_overlap_up_to_a_week(api, endpoint_a, overlap):
    response = api.post(
        f"/api/v1/endpoints/{endpoint_a.id}/rotate-secret/",
        {"overlap_seconds": overlap},
        format="json",
    )

    assert response.status_code == 200
    expires = datetime.fromisoformat(response.json()["previous_secret_expires_at"])
    assert abs(expires - (timezone.now() + timedelta(seconds=overlap))) < timedelta(minutes=1)


@pytest.mark.parametrize("overlap", [-1, 7 * DAY + 1, "soon", None, 1.5, [60]])
def test_rotate_secret_refuses_an_overlap_outside_a_week(api, endpoint_a, overlap):
    before = db_state()

    response = api.post(
        f"/api/v1/endpoints/{endpoint_a.id}/rotate-secret/",
        {"overlap_seconds": overlap},
        format="json",
    )

    assert response.status_code == 400
    assert "overlap_seconds" in assert_error_body(response, "invalid")["fields"]
    assert db_state() == before


def _signatures_verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    try:
        verify(secret, headers, body)
        Webhook(secret).verify(body, headers)
    except (VerificationError, WebhookVerificationError):
        return False
    return True


@pytest.mark.django_db(transaction=True)
def test_a_delivery_after_rotation_is_signed_with_the_old_and_the_new_secret(
    api, order_paid, receiver
):
    created = _create(api, url=receiver.url("/rotated")).json()
    rotated = api.post(f"/api/v1/endpoints/{created['id']}/rotate-secret/", {}, format="json")
    emitted = api.post(
        "/api/v1/events/",
        {"event_type": "order.paid", "payload": {"order_id": "o-9"}},
        format="json",
    )
    assert emitted.status_code == 202

    assert deliver_due_batch(limit=10) == 1

    [request] = receiver.requests("/rotated")
    assert request.headers["webhook-id"] == emitted.json()["id"]
    assert len(request.headers["webhook-signature"].split()) == 2
    assert _signatures_verify(created["secret"], request.headers, request.body)
    assert _signatures_verify(rotated.json()["secret"], request.headers, request.body)
    assert not _signatures_verify(_secret(32), request.headers, request.body)


@pytest.mark.django_db(transaction=True)
def test_after_a_rotation_without_overlap_only_the_new_secret_signs(api, order_paid, receiver):
    created = _create(api, url=receiver.url("/leaked")).json()
    rotated = api.post(
        f"/api/v1/endpoints/{created['id']}/rotate-secret/",
        {"overlap_seconds": 0},
        format="json",
    )
    api.post(
        "/api/v1/events/",
        {"event_type": "order.paid", "payload": {"order_id": "o-9"}},
        format="json",
    )

    deliver_due_batch(limit=10)

    [request] = receiver.requests("/leaked")
    assert len(request.headers["webhook-signature"].split()) == 1
    assert _signatures_verify(rotated.json()["secret"], request.headers, request.body)
    assert not _signatures_verify(created["secret"], request.headers, request.body)


# --- Test events ----------------------------------------------------------------------------------


def test_test_event_to_a_disabled_endpoint_is_409(api, tenant_a, receiver, test_event_type):
    endpoint = EndpointFactory(tenant=tenant_a, url=receiver.url("/test"), is_active=False)
    before = db_state()

    response = api.post(f"/api/v1/endpoints/{endpoint.id}/test/", {}, format="json")

    assert response.status_code == 409
    assert_error_body(response, "conflict")
    assert receiver.requests() == []
    assert db_state() == before


@pytest.mark.parametrize(
    "params",
    [
        {"event_type": "order.nope"},
        {"event_type": "order.old"},
        {"event_type": "order.paid", "payload": {"order_id": 1}},
        {"payload": ["not", "an", "object"]},
    ],
)
def test_test_event_with_bad_input_is_400_and_sends_nothing(
    api, tenant_a, receiver, order_paid, test_event_type, params
):
    EventTypeFactory(name="order.old", archived=True)
    endpoint = EndpointFactory(tenant=tenant_a, url=receiver.url("/test"))
    before = db_state()

    response = api.post(f"/api/v1/endpoints/{endpoint.id}/test/", params, format="json")

    assert response.status_code == 400
    assert_error_body(response, "invalid")
    assert receiver.requests() == []
    assert db_state() == before


def test_a_header_value_http_cannot_carry_never_leads_to_a_500(api, receiver, test_event_type):
    created = _create(api, url=receiver.url("/h"), headers={"X-Name": "日本"})
    if created.status_code == 400:
        return  # refusing it up front is a fine answer too

    response = api.post(f"/api/v1/endpoints/{created.json()['id']}/test/", {}, format="json")

    assert response.status_code == 200


def test_an_endpoint_with_an_unsendable_header_does_not_break_the_batch(
    api, tenant_a, order_paid, receiver
):
    created = _create(api, url=receiver.url("/bad"), headers={"X-Name": "日本"})
    if created.status_code == 400:
        return
    EndpointFactory(tenant=tenant_a, url=receiver.url("/good"))
    api.post(
        "/api/v1/events/", {"event_type": "order.paid", "payload": {"order_id": "1"}}, format="json"
    )

    deliver_due_batch(limit=10)

    assert len(receiver.requests("/good")) == 1
    assert Delivery.objects.filter(status=Delivery.Status.SUCCEEDED).count() == 1


# --- Recover --------------------------------------------------------------------------------------


def test_recover_replays_the_failed_deliveries_since_a_time(api, endpoint_a, make_delivery):
    since = timezone.now() - timedelta(hours=1)
    recent_failures = [
        make_delivery(endpoint_a, created_at=since + timedelta(minutes=m)) for m in (1, 2, 3)
    ]
    older_failure = make_delivery(endpoint_a, created_at=since - timedelta(minutes=1))
    succeeded = make_delivery(endpoint_a, Delivery.Status.SUCCEEDED)
    other_endpoint = EndpointFactory(tenant=endpoint_a.tenant, url="http://127.0.0.1:9/other")
    other_failure = make_delivery(other_endpoint)

    response = api.post(
        f"/api/v1/endpoints/{endpoint_a.id}/recover/", {"since": since.isoformat()}, format="json"
    )

    assert response.status_code == 202, response.content
    job = response.json()
    assert job["id"]
    assert job["url"].endswith(f"/api/v1/replay-jobs/{job['id']}/")
    assert job["total"] == 3
    assert job["status"] == "queued"

    replay_job_run(job_id=job["id"])
    progress = api.get(f"/api/v1/replay-jobs/{job['id']}/")

    assert progress.status_code == 200
    assert progress.json()["status"] == "done"
    assert progress.json()["replayed"] == 3
    for delivery in recent_failures:
        delivery.refresh_from_db()
        assert delivery.status == Delivery.Status.PENDING
    for delivery, status in (
        (older_failure, Delivery.Status.FAILED),
        (succeeded, Delivery.Status.SUCCEEDED),
        (other_failure, Delivery.Status.FAILED),
    ):
        delivery.refresh_from_db()
        assert delivery.status == status


@pytest.mark.parametrize(
    "body", [{}, {"since": ""}, {"since": "yesterday"}, {"since": "2024-13-45T00:00:00Z"}]
)
def test_recover_without_a_valid_since_is_400(api, endpoint_a, make_delivery, body):
    make_delivery(endpoint_a)
    before = db_state()

    response = api.post(f"/api/v1/endpoints/{endpoint_a.id}/recover/", body, format="json")

    assert response.status_code == 400
    assert "since" in assert_error_body(response, "invalid")["fields"]
    assert db_state() == before
    assert not ReplayJob.objects.exists()


# --- Tenant isolation -----------------------------------------------------------------------------

FOREIGN_ENDPOINT_REQUESTS = [
    pytest.param("get", "", None, id="retrieve"),
    pytest.param("put", "", {"url": "http://127.0.0.1:9/hijacked"}, id="put"),
    pytest.param("patch", "", {"is_active": False}, id="patch"),
    pytest.param("delete", "", None, id="delete"),
    pytest.param("post", "rotate-secret/", {}, id="rotate-secret"),
    pytest.param("post", "test/", {}, id="test"),
    pytest.param("post", "recover/", {"since": "2000-01-01T00:00:00Z"}, id="recover"),
    pytest.param("put", "", {"url": "ftp://x"}, id="invalid-put"),
    pytest.param("post", "rotate-secret/", {"overlap_seconds": -1}, id="invalid-rotate-secret"),
    pytest.param("post", "test/", {"event_type": "order.nope"}, id="invalid-test"),
    pytest.param("post", "recover/", {}, id="invalid-recover"),
]


@pytest.mark.parametrize(("method", "action", "body"), FOREIGN_ENDPOINT_REQUESTS)
def test_another_tenants_endpoint_is_404_and_unchanged(
    other_api, endpoint_a, make_delivery, test_event_type, method, action, body
):
    make_delivery(endpoint_a)
    before = db_state()

    response = getattr(other_api, method)(
        f"/api/v1/endpoints/{endpoint_a.id}/{action}", body, format="json"
    )

    assert response.status_code == 404
    assert_error_body(response, "not_found")
    assert db_state() == before


def test_endpoint_lists_show_only_own_endpoints(api, other_api, endpoint_a, endpoint_b):
    assert [e["id"] for e in api.get("/api/v1/endpoints/").json()["results"]] == [endpoint_a.id]
    mine = other_api.get("/api/v1/endpoints/").json()["results"]
    assert [e["id"] for e in mine] == [endpoint_b.id]


def test_created_endpoints_belong_to_the_callers_tenant(other_api, tenant_a, tenant_b):
    response = _create(other_api, tenant=tenant_a.id)

    assert response.status_code == 201
    assert Endpoint.objects.get(id=response.json()["id"]).tenant == tenant_b
