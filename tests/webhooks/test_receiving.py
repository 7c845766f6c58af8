"""The `@verify_webhook` view decorator, through Django's test client and RequestFactory."""

from __future__ import annotations

import logging
import time

import pytest
from django.http import Http404, HttpRequest, JsonResponse
from django.test import Client, RequestFactory
from django.urls import path

from subscriptions.models import generate_signing_secret
from webhooks.receiving import verify_webhook
from webhooks.signing import InvalidSecretError, VerifiedMessage, secret_key, signature_header

SECRET = generate_signing_secret()
TENANT_SECRETS = {"acme": generate_signing_secret(), "globex": generate_signing_secret()}


def signed(
    body: bytes, *, secret: str = SECRET, msg_id: str = "msg_1", at: int | None = None
) -> dict[str, str]:
    stamp = int(time.time()) if at is None else at
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature_header([secret_key(secret)], msg_id, stamp, body),
    }


def echo(request: HttpRequest) -> JsonResponse:
    message: VerifiedMessage = request.webhook
    return JsonResponse({"id": message.id, "type": message.json()["type"]})


receive = verify_webhook(secret=SECRET)(echo)


def tenant_secret(request: HttpRequest) -> str:
    try:
        return TENANT_SECRETS[request.resolver_match.kwargs["tenant"]]
    except KeyError:
        raise Http404("no such tenant") from None


@verify_webhook(secret=tenant_secret)
def receive_for_tenant(request: HttpRequest, tenant: str) -> JsonResponse:
    return JsonResponse({"tenant": tenant, "id": request.webhook.id})


urlpatterns = [
    path("hooks/", receive),
    path("hooks/<slug:tenant>/", receive_for_tenant),
]

BODY = b'{"type":"order.paid","timestamp":"2026-11-29T10:58:36.643Z","data":{"n":1}}'


@pytest.fixture
def client(settings) -> Client:
    settings.ROOT_URLCONF = __name__
    return Client(enforce_csrf_checks=True)


def post(client: Client, url: str, body: bytes, headers: dict[str, str]):
    return client.post(url, body, content_type="application/json", headers=headers)


def test_an_authentic_message_reaches_the_view_csrf_exempt(client):
    response = post(client, "/hooks/", BODY, signed(BODY, msg_id="msg_ok"))

    assert response.status_code == 200
    assert response.json() == {"id": "msg_ok", "type": "order.paid"}


@pytest.mark.parametrize("method", ["get", "put", "delete", "head"])
def test_other_methods_are_405_with_allow_post(client, method):
    response = getattr(client, method)("/hooks/")

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    if method != "head":
        assert "not allowed" in response.json()["error"]


@pytest.mark.parametrize(
    ("dropped", "replaced", "reason"),
    [
        (["webhook-signature"], {}, "missing header(s): webhook-signature"),
        (["webhook-id", "webhook-timestamp"], {}, "webhook-id, webhook-timestamp"),
        ([], {"webhook-timestamp": "yesterday"}, "is not unix seconds"),
    ],
)
def test_missing_or_malformed_headers_are_400(client, dropped, replaced, reason):
    headers = {n: v for n, v in signed(BODY).items() if n not in dropped} | replaced

    response = post(client, "/hooks/", BODY, headers)

    assert response.status_code == 400
    assert reason in response.json()["error"]


def test_a_tampered_body_is_401(client):
    response = post(client, "/hooks/", BODY.replace(b'"n":1', b'"n":2'), signed(BODY))

    assert response.status_code == 401
    assert response.json()["error"].startswith("no signature matches")


def test_a_wrong_secret_is_401(client):
    response = post(client, "/hooks/", BODY, signed(BODY, secret=generate_signing_secret()))

    assert response.status_code == 401


@pytest.mark.parametrize(("skew", "words"), [(-400, "s old"), (400, "in the future")])
def test_a_timestamp_outside_the_tolerance_is_401(client, skew, words):
    response = post(client, "/hooks/", BODY, signed(BODY, at=int(time.time()) + skew))

    assert response.status_code == 401
    assert words in response.json()["error"]


def test_tolerance_is_configurable():
    strict = verify_webhook(secret=SECRET, tolerance=5)(echo)
    headers = signed(BODY, at=int(time.time()) - 60)
    request = RequestFactory().post("/", BODY, content_type="application/json", headers=headers)

    assert strict(request).status_code == 401
    assert receive(request).status_code == 200


def test_a_list_of_secrets_accepts_any_of_them():
    old, new = generate_signing_secret(), generate_signing_secret()
    view = verify_webhook(secret=[old, new])(echo)
    for secret in (old, new):
        request = RequestFactory().post(
            "/", BODY, content_type="application/json", headers=signed(BODY, secret=secret)
        )
        assert view(request).status_code == 200


def test_a_callable_picks_each_tenants_secret(client):
    acme, globex = TENANT_SECRETS["acme"], TENANT_SECRETS["globex"]

    ok = post(client, "/hooks/acme/", BODY, signed(BODY, secret=acme, msg_id="msg_a"))
    crossed = post(client, "/hooks/globex/", BODY, signed(BODY, secret=acme))
    unknown = post(client, "/hooks/initech/", BODY, signed(BODY, secret=acme))

    assert (ok.status_code, ok.json()) == (200, {"tenant": "acme", "id": "msg_a"})
    assert crossed.status_code == 401
    assert unknown.status_code == 404
    assert post(client, "/hooks/globex/", BODY, signed(BODY, secret=globex)).status_code == 200


def test_rejections_are_logged_as_warnings_without_secret_or_signature(client, caplog):
    headers = signed(BODY, msg_id="msg_logged") | {"webhook-timestamp": str(int(time.time()))}
    with caplog.at_level(logging.WARNING, logger="hookline_receiver.django"):
        post(client, "/hooks/", b"{}", headers)

    [record] = [r for r in caplog.records if r.name == "hookline_receiver.django"]
    assert record.levelno == logging.WARNING
    logged = record.getMessage()
    assert "401" in logged
    assert "msg_logged" in logged
    assert "/hooks/" in logged
    assert SECRET not in logged
    assert SECRET.removeprefix("whsec_") not in logged
    assert headers["webhook-signature"].removeprefix("v1,") not in logged


def test_an_unusable_secret_is_a_loud_configuration_error():
    view = verify_webhook(secret="whsec_not base64")(echo)
    request = RequestFactory().post(
        "/", BODY, content_type="application/json", headers=signed(BODY)
    )
    with pytest.raises(InvalidSecretError):
        view(request)


def test_async_views_are_refused_at_decoration():
    async def receive_async(request):  # pragma: no cover - never called
        return JsonResponse({})

    with pytest.raises(TypeError, match="synchronous"):
        verify_webhook(secret=SECRET)(receive_async)


def test_the_decorated_view_keeps_its_name_and_is_csrf_exempt():
    assert receive.__name__ == "echo"
    assert receive.csrf_exempt is True
