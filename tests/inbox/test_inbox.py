from __future__ import annotations

import json
import time

import pytest
from django.contrib.auth import get_user_model

from inbox.models import Inbox, InboxRequest
from tests.factories import EndpointFactory, TenantFactory
from webhooks.signing import secret_key, signature_header

pytestmark = pytest.mark.django_db


@pytest.fixture
def inbox():
    return Inbox.objects.create(tenant=TenantFactory())


def signed(secret: str, body: bytes) -> dict[str, str]:
    now = int(time.time())
    return {
        "HTTP_WEBHOOK_ID": "msg_1",
        "HTTP_WEBHOOK_TIMESTAMP": str(now),
        "HTTP_WEBHOOK_SIGNATURE": signature_header([secret_key(secret)], "msg_1", now, body),
    }


def test_inbox_records_the_request_and_checks_the_signature(client, inbox):
    endpoint = EndpointFactory(
        tenant=inbox.tenant, url=f"http://127.0.0.1:8000/inbox/{inbox.token}/"
    )
    body = json.dumps({"type": "order.paid", "data": {}}).encode()

    response = client.post(
        f"/inbox/{inbox.token}/",
        body,
        content_type="application/json",
        **signed(endpoint.secret, body),
    )

    assert response.status_code == 200
    stored = InboxRequest.objects.get(inbox=inbox)
    assert (stored.webhook_id, stored.signature_valid, stored.response_status) == (
        "msg_1",
        True,
        200,
    )
    assert json.loads(stored.body)["type"] == "order.paid"


def test_inbox_flags_a_signature_from_another_secret(client, inbox):
    EndpointFactory(tenant=inbox.tenant, url=f"http://127.0.0.1:8000/inbox/{inbox.token}/")
    other = EndpointFactory(url="http://127.0.0.1:8000/elsewhere/")
    body = b"{}"

    client.post(
        f"/inbox/{inbox.token}/",
        body,
        content_type="application/json",
        **signed(other.secret, body),
    )

    assert InboxRequest.objects.get().signature_valid is False


def test_inbox_answers_with_its_configured_status(client, inbox):
    inbox.respond_status = 503
    inbox.save(update_fields=["respond_status"])

    response = client.post(f"/inbox/{inbox.token}/", b"{}", content_type="application/json")

    assert response.status_code == 503
    assert InboxRequest.objects.get().signature_valid is None


def test_unknown_inbox_is_404_and_records_nothing(client):
    assert (
        client.post("/inbox/ibx_nope/", b"{}", content_type="application/json").status_code == 404
    )
    assert not InboxRequest.objects.exists()


def test_inbox_keeps_only_its_latest_requests(client, inbox, monkeypatch):
    monkeypatch.setattr("inbox.views.KEEP_REQUESTS", 3)
    for n in range(5):
        client.post(f"/inbox/{inbox.token}/", f'{{"n": {n}}}', content_type="application/json")

    kept = [
        json.loads(body)["n"]
        for body in inbox.requests.order_by("id").values_list("body", flat=True)
    ]

    assert kept == [2, 3, 4]


# --- Credentials: what a browser or client adds on its own is never kept nor shown ---------------

CREDENTIALS = {
    "HTTP_COOKIE": "sessionid=op3r4t0rs3ss10nk3y00000000000000; csrftoken=csrfcookievalue123",
    "HTTP_AUTHORIZATION": "Bearer hl_authorizationvalue",
    "HTTP_PROXY_AUTHORIZATION": "Basic cHJveHl1c2VyOnByb3h5cGFzcw==",
    "HTTP_X_CSRFTOKEN": "csrfheadervalue456",
    "HTTP_X_XSRF_TOKEN": "xsrfheadervalue789",
}
CREDENTIAL_VALUES = (
    "op3r4t0rs3ss10nk3y",
    "csrfcookievalue123",
    "hl_authorizationvalue",
    "cHJveHl1c2VyOnByb3h5cGFzcw",
    "csrfheadervalue456",
    "xsrfheadervalue789",
)


def test_inbox_never_keeps_cookies_authorization_or_csrf_headers(client, inbox):
    client.post(
        f"/inbox/{inbox.token}/",
        b'{"hello": "world"}',
        content_type="application/json",
        HTTP_X_CUSTOM="kept",
        **CREDENTIALS,
    )

    stored = InboxRequest.objects.get(inbox=inbox)
    names = {name.lower() for name in stored.headers}
    assert names.isdisjoint(
        {"cookie", "authorization", "proxy-authorization", "x-csrftoken", "x-xsrf-token"}
    ), names
    assert stored.headers["X-Custom"] == "kept"
    everything = json.dumps(stored.headers) + stored.body
    for value in CREDENTIAL_VALUES:
        assert value not in everything


def test_inbox_page_never_shows_credentials_that_older_rows_still_hold(client, inbox):
    member = get_user_model().objects.create_user("tenant-user", password="secret-pass-123")
    inbox.tenant.members.add(member)
    InboxRequest.objects.create(
        inbox=inbox,
        method="GET",
        headers={
            "Cookie": "sessionid=op3r4t0rs3ss10nk3y00000000000000",
            "Authorization": "Bearer hl_authorizationvalue",
            "X-Csrftoken": "csrfheadervalue456",
            "X-Custom": "still-shown",
        },
        body="",
        response_status=200,
    )
    client.force_login(member)

    page = client.get(f"/dashboard/inbox/?inbox={inbox.pk}")

    assert page.status_code == 200
    html = page.content.decode()
    assert "still-shown" in html
    for value in CREDENTIAL_VALUES:
        assert value not in html


def test_a_dashboard_endpoint_for_the_inbox_past_the_tenants_limit_is_refused(
    client, inbox, settings
):
    settings.WEBHOOKS_MAX_ENDPOINTS_PER_TENANT = 1
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "127.0.0.1"]
    EndpointFactory(tenant=inbox.tenant, url="http://127.0.0.1:9/first")
    client.force_login(get_user_model().objects.create_user("op", is_staff=True))

    page = client.post(
        f"/dashboard/inbox/endpoint/?tenant={inbox.tenant.slug}",
        {"inbox": inbox.pk},
        follow=True,
        HTTP_HOST="127.0.0.1",  # the inbox URL must resolve to pass the endpoint checks
    )

    assert page.status_code == 200
    assert "Could not create the endpoint: This tenant already has 1 endpoints" in page.text
    assert inbox.tenant.endpoints.count() == 1


# --- Bodies over the limit -----------------------------------------------------------------------


def test_a_body_over_the_limit_is_a_json_413_and_one_at_the_limit_is_received(
    client, inbox, settings
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    at_limit = b'{"pad": "' + b"x" * (1000 - 11) + b'"}'
    assert len(at_limit) == 1000

    refused = client.post(f"/inbox/{inbox.token}/", at_limit + b" ", content_type="text/plain")
    received = client.post(f"/inbox/{inbox.token}/", at_limit, content_type="application/json")

    assert refused.status_code == 413
    assert refused.json()["code"] == "payload_too_large"
    assert refused.json()["detail"] == (
        "The request body is 1001 bytes; this URL accepts at most 1000 bytes."
    )
    assert received.status_code == 200
    assert [request.body for request in inbox.requests.all()] == [at_limit.decode()]
