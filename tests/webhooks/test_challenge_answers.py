"""Receivers answer Hookline's ownership challenge: `VerifiedMessage.challenge()` finds it, and
`@verify_webhook` echoes it without calling the view, only once the signature matched."""

from __future__ import annotations

import json
import time

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from subscriptions.models import generate_signing_secret
from webhooks.receiving import verify_webhook
from webhooks.signing import VerifiedMessage, secret_key, signature_header

SECRET = generate_signing_secret()
CHALLENGE = "Zm9vYmFy-challenge_123"


def body_of(message: object) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


CHALLENGE_BODY = body_of(
    {
        "type": "hookline.verification",
        "timestamp": "2026-12-04T10:00:00.000Z",
        "data": {"challenge": CHALLENGE},
    }
)


def post(body: bytes, *, secret: str = SECRET) -> HttpRequest:
    stamp = int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature_header([secret_key(secret)], "msg_1", stamp, body),
    }
    return RequestFactory().post("/", body, content_type="application/json", headers=headers)


calls: list[bytes] = []


@verify_webhook(secret=SECRET)
def receive(request: HttpRequest) -> HttpResponse:
    calls.append(request.webhook.body)
    return HttpResponse(status=204)


@pytest.fixture(autouse=True)
def _no_calls():
    calls.clear()


def test_a_signed_challenge_is_echoed_without_calling_the_view():
    response = receive(post(CHALLENGE_BODY))

    assert response.status_code == 200
    assert json.loads(response.content) == {"challenge": CHALLENGE}
    assert calls == []


def test_a_challenge_with_a_wrong_signature_is_refused_not_echoed():
    response = receive(post(CHALLENGE_BODY, secret=generate_signing_secret()))

    assert response.status_code == 401
    assert CHALLENGE.encode() not in response.content
    assert calls == []


def test_other_messages_reach_the_view():
    body = body_of({"type": "order.paid", "timestamp": "…", "data": {"challenge": CHALLENGE}})

    assert receive(post(body)).status_code == 204
    assert calls == [body]


@pytest.mark.parametrize(
    ("message", "challenge"),
    [
        ({"type": "hookline.verification", "data": {"challenge": "abc"}}, "abc"),
        ({"type": "hookline.verification", "data": {"challenge": 12}}, None),
        ({"type": "hookline.verification", "data": ["abc"]}, None),
        ({"type": "hookline.verification"}, None),
        ({"type": "order.paid", "data": {"note": "hookline.verification", "challenge": "a"}}, None),
        (["hookline.verification", {"challenge": "abc"}], None),
    ],
)
def test_only_a_verification_message_carries_a_challenge(message, challenge):
    verified = VerifiedMessage(id="msg_1", timestamp=0, body=body_of(message))

    assert verified.challenge() == challenge


@pytest.mark.parametrize(
    "body",
    [
        b"hookline.verification",
        b'{"type":"hookline.verification"' + b"[" * 100_000,
        b"<webhook><type>hookline.verification</type></webhook>",
        b'\xff\xfe"hookline.verification"',
    ],
)
def test_a_body_that_is_not_json_has_no_challenge(body):
    assert VerifiedMessage(id="msg_1", timestamp=0, body=body).challenge() is None
