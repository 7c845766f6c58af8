from __future__ import annotations

import base64
import time

import pytest
import standardwebhooks

from subscriptions.models import generate_signing_secret
from webhooks.signing import VerificationError, secret_key, signature_header, verify


def sign_like_hookline(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header([secret_key(secret)], msg_id, timestamp, body),
    }


def test_generated_secret_is_whsec_and_32_random_bytes():
    secret = generate_signing_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert generate_signing_secret() != secret


def test_standardwebhooks_package_accepts_what_hookline_signs():
    secret, body = generate_signing_secret(), b'{"type":"order.paid","data":{"a":"\xc3\xa9"}}'
    headers = sign_like_hookline(secret, "msg_1", int(time.time()), body)
    assert standardwebhooks.Webhook(secret).verify(body, headers)["type"] == "order.paid"


def test_hookline_accepts_what_the_standardwebhooks_package_signs():
    secret, body = generate_signing_secret(), b'{"x":1}'
    now = int(time.time())
    signature = standardwebhooks.Webhook(secret).sign("msg_2", _datetime(now), body.decode())
    headers = {"webhook-id": "msg_2", "webhook-timestamp": str(now), "webhook-signature": signature}
    verify(secret, headers, body)


def test_rotation_header_carries_one_signature_per_secret_and_either_verifies():
    old, new, body = generate_signing_secret(), generate_signing_secret(), b"{}"
    now = int(time.time())
    header = signature_header([secret_key(new), secret_key(old)], "msg_3", now, body)
    assert len(header.split(" ")) == 2
    headers = {"webhook-id": "msg_3", "webhook-timestamp": str(now), "webhook-signature": header}
    verify(old, headers, body)
    verify(new, headers, body)
    with pytest.raises(VerificationError, match="no signature matches"):
        verify(generate_signing_secret(), headers, body)


@pytest.mark.parametrize("skew", [-301, 301])
def test_timestamps_outside_the_tolerance_are_refused(skew):
    secret, body = generate_signing_secret(), b"{}"
    stamp = int(time.time()) + skew
    with pytest.raises(VerificationError, match="away from now"):
        verify(secret, sign_like_hookline(secret, "msg_4", stamp, body), body)


def test_tampered_body_is_refused():
    secret = generate_signing_secret()
    headers = sign_like_hookline(secret, "msg_5", int(time.time()), b'{"amount":1}')
    with pytest.raises(VerificationError):
        verify(secret, headers, b'{"amount":1000}')


def _datetime(timestamp: int):
    import datetime

    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
