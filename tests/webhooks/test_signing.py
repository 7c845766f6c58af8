"""Signing and verification, against the `standardwebhooks` package in both directions."""

from __future__ import annotations

import base64
import datetime
import json
import time

import pytest
import standardwebhooks
from django.test import RequestFactory
from hypothesis import given, settings
from hypothesis import strategies as st

from deliveries.batch import deliver_now
from deliveries.models import Delivery
from subscriptions.models import generate_signing_secret
from subscriptions.services import endpoint_rotate_secret
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event
from webhooks.signing import (
    InvalidHeadersError,
    InvalidSecretError,
    SignatureMismatchError,
    TimestampTooNewError,
    TimestampTooOldError,
    VerificationError,
    VerifiedMessage,
    secret_key,
    signature_header,
    verify,
)


def sign_like_hookline(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header([secret_key(secret)], msg_id, timestamp, body),
    }


def sign_like_standardwebhooks(secret: str, msg_id: str, timestamp: int, body: str) -> dict:
    signature = standardwebhooks.Webhook(secret).sign(msg_id, _datetime(timestamp), body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def test_generated_secret_is_whsec_and_32_random_bytes():
    secret = generate_signing_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert generate_signing_secret() != secret


# --- Compatibility with the standardwebhooks package ----------------------------------------------


def test_standardwebhooks_package_accepts_what_hookline_signs():
    secret, body = generate_signing_secret(), b'{"type":"order.paid","data":{"a":"\xc3\xa9"}}'
    headers = sign_like_hookline(secret, "msg_1", int(time.time()), body)
    assert standardwebhooks.Webhook(secret).verify(body, headers)["type"] == "order.paid"


def test_hookline_accepts_what_the_standardwebhooks_package_signs():
    secret, body, now = generate_signing_secret(), '{"x":1}', int(time.time())
    headers = sign_like_standardwebhooks(secret, "msg_2", now, body)

    message = verify(secret, headers, body.encode())

    assert message == VerifiedMessage(id="msg_2", timestamp=now, body=b'{"x":1}')
    assert message.json() == {"x": 1}
    assert message.signed_at == _datetime(now)


@pytest.mark.django_db(transaction=True)
def test_a_real_delivery_verifies_with_both_libraries(receiver):
    EventTypeFactory(name="order.paid")
    endpoint = EndpointFactory(tenant=TenantFactory(), url=receiver.url("/real"))
    event = send_event(endpoint.tenant, "order.paid", {"order_id": "o-1", "note": "café ☕"})

    attempt = deliver_now(Delivery.objects.get(event=event).id)

    assert attempt is not None
    assert attempt.response_status == 200
    [request] = receiver.requests("/real")
    payload = standardwebhooks.Webhook(endpoint.secret).verify(request.body, request.headers)
    message = verify(endpoint.secret, request.headers, request.body)
    assert message.json() == payload
    assert payload["data"] == {"order_id": "o-1", "note": "café ☕"}
    assert message.id == event.public_id == request.headers["webhook-id"]
    assert abs(message.timestamp - time.time()) < 60
    with pytest.raises(SignatureMismatchError):
        verify(endpoint.secret, request.headers, request.body.replace(b"o-1", b"o-2"))
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(endpoint.secret).verify(request.body + b" ", request.headers)


@pytest.mark.django_db(transaction=True)
def test_a_real_delivery_during_a_rotation_verifies_with_either_secret(receiver):
    EventTypeFactory(name="order.paid")
    endpoint = EndpointFactory(tenant=TenantFactory(), url=receiver.url("/rotating"))
    old = endpoint.secret
    new = endpoint_rotate_secret(endpoint=endpoint).secret
    event = send_event(endpoint.tenant, "order.paid", {"n": 1})

    deliver_now(Delivery.objects.get(event=event).id)

    [request] = receiver.requests("/rotating")
    assert len(request.headers["webhook-signature"].split()) == 2
    for secret in (old, new):
        standardwebhooks.Webhook(secret).verify(request.body, request.headers)
        assert verify(secret, request.headers, request.body).id == event.public_id
    # A receiver in the middle of its own rotation passes both; an unknown secret still fails.
    assert verify([generate_signing_secret(), new], request.headers, request.body)
    with pytest.raises(SignatureMismatchError):
        verify(generate_signing_secret(), request.headers, request.body)


@pytest.mark.django_db(transaction=True)
def test_a_real_delivery_after_two_rotations_carries_a_v1_signature_for_each_of_three_secrets(
    receiver,
):
    EventTypeFactory(name="order.paid")
    endpoint = EndpointFactory(tenant=TenantFactory(), url=receiver.url("/twice"))
    first = endpoint.secret
    second = endpoint_rotate_secret(endpoint=endpoint).secret
    third = endpoint_rotate_secret(endpoint=endpoint).secret
    event = send_event(endpoint.tenant, "order.paid", {"n": 1})

    deliver_now(Delivery.objects.get(event=event).id)

    [request] = receiver.requests("/twice")
    entries = request.headers["webhook-signature"].split(" ")
    assert len(entries) == 3
    assert all(entry.startswith("v1,") for entry in entries)
    for secret in (first, second, third):
        standardwebhooks.Webhook(secret).verify(request.body, request.headers)
        assert verify(secret, request.headers, request.body).id == event.public_id


def test_rotation_header_carries_one_signature_per_secret_and_either_verifies():
    old, new, body = generate_signing_secret(), generate_signing_secret(), b"{}"
    now = int(time.time())
    header = signature_header([secret_key(new), secret_key(old)], "msg_3", now, body)
    assert len(header.split(" ")) == 2
    headers = {"webhook-id": "msg_3", "webhook-timestamp": str(now), "webhook-signature": header}
    verify(old, headers, body)
    verify(new, headers, body)
    with pytest.raises(SignatureMismatchError, match="no signature matches"):
        verify(generate_signing_secret(), headers, body)


# --- Rejections: each its own exception, each refused by standardwebhooks too --------------------


def test_tampered_body_is_refused():
    secret = generate_signing_secret()
    headers = sign_like_hookline(secret, "msg_5", int(time.time()), b'{"amount":1}')
    with pytest.raises(SignatureMismatchError, match="no signature matches"):
        verify(secret, headers, b'{"amount":1000}')
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(b'{"amount":1000}', headers)


def test_wrong_secret_is_refused():
    secret, other, body = generate_signing_secret(), generate_signing_secret(), b"{}"
    headers = sign_like_standardwebhooks(secret, "msg_6", int(time.time()), body.decode())
    with pytest.raises(SignatureMismatchError):
        verify(other, headers, body)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(other).verify(body, headers)


@pytest.mark.parametrize(
    ("skew", "error", "words"),
    [
        (-301, TimestampTooOldError, "s old"),
        (-86400, TimestampTooOldError, "s old"),
        (301, TimestampTooNewError, "in the future"),
        (86400, TimestampTooNewError, "in the future"),
    ],
)
def test_timestamps_outside_the_tolerance_are_refused(skew, error, words):
    secret, body = generate_signing_secret(), b"{}"
    headers = sign_like_hookline(secret, "msg_4", int(time.time()) + skew, body)
    with pytest.raises(error, match=f"{words}.*away from now"):
        verify(secret, headers, body)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(body, headers)


def test_tolerance_is_the_callers_and_bounds_are_inclusive():
    secret, body, now = generate_signing_secret(), b"{}", 1_800_000_000
    headers = sign_like_hookline(secret, "msg_7", now - 10, body)
    assert verify(secret, headers, body, tolerance=10, now=now).timestamp == now - 10
    with pytest.raises(TimestampTooOldError):
        verify(secret, headers, body, tolerance=9, now=now)
    with pytest.raises(TimestampTooNewError):
        verify(secret, headers, body, tolerance=9, now=now - 20)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_refused_and_named(missing):
    secret, body = generate_signing_secret(), b"{}"
    headers = sign_like_hookline(secret, "msg_8", int(time.time()), body)
    del headers[missing]
    with pytest.raises(InvalidHeadersError, match=f"missing header.*{missing}"):
        verify(secret, headers, body)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(body, headers)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("webhook-timestamp", "soon"),
        ("webhook-timestamp", "1.8e9"),
        ("webhook-timestamp", "-1800000000"),
        ("webhook-timestamp", "١٨٠٠٠٠٠٠٠٠"),  # digits, but not ASCII ones
        ("webhook-id", ""),
        ("webhook-id", "msg.1"),
        ("webhook-signature", "   "),
    ],
)
def test_a_malformed_header_is_refused(name, value):
    secret, body = generate_signing_secret(), b"{}"
    headers = sign_like_hookline(secret, "msg_9", int(time.time()), body) | {name: value}
    with pytest.raises(InvalidHeadersError):
        verify(secret, headers, body)


def test_every_rejection_is_a_verification_error():
    for error in (
        InvalidHeadersError,
        TimestampTooOldError,
        TimestampTooNewError,
        SignatureMismatchError,
    ):
        assert issubclass(error, VerificationError)
    assert not issubclass(InvalidSecretError, VerificationError)


# --- What receivers may pass ----------------------------------------------------------------------


def test_headers_from_django_a_wsgi_environ_or_any_letter_case():
    secret, body, now = generate_signing_secret(), b'{"a":1}', int(time.time())
    headers = sign_like_hookline(secret, "msg_10", now, body)
    request = RequestFactory().post(
        "/hook",
        body,
        content_type="application/json",
        headers={name.title(): value for name, value in headers.items()},
    )

    assert verify(secret, request.headers, request.body).id == "msg_10"
    assert verify(secret, request.META, request.body).id == "msg_10"
    assert verify(secret, {k.upper(): v for k, v in headers.items()}, body).id == "msg_10"


def test_conflicting_spellings_of_one_header_are_refused():
    secret, body = generate_signing_secret(), b"{}"
    headers = sign_like_hookline(secret, "msg_11", int(time.time()), body)
    with pytest.raises(InvalidHeadersError, match="conflicting"):
        verify(secret, headers | {"Webhook-Id": "msg_other"}, body)


def test_body_as_str_and_secret_without_prefix_or_as_key_bytes():
    secret, now = generate_signing_secret(), int(time.time())
    headers = sign_like_hookline(secret, "msg_12", now, "prix: 5 €".encode())
    for form in (secret, secret.removeprefix("whsec_"), secret_key(secret), f" {secret}\n"):
        assert verify(form, headers, "prix: 5 €").body == "prix: 5 €".encode()


def test_unpadded_base64_secret_is_accepted_like_standardwebhooks_does():
    key = b"k" * 25  # base64 of 25 bytes ends with "="
    secret = "whsec_" + base64.b64encode(key).decode().rstrip("=")
    headers = sign_like_hookline("whsec_" + base64.b64encode(key).decode(), "m", 1, b"")
    assert verify(secret, headers, b"", now=1).id == "m"
    standardwebhooks.Webhook(secret).sign("m", _datetime(1), "")  # the package agrees it is valid


def test_signatures_of_other_versions_are_ignored():
    secret, body, now = generate_signing_secret(), b"{}", int(time.time())
    good = sign_like_hookline(secret, "msg_13", now, body)["webhook-signature"]
    headers = sign_like_hookline(secret, "msg_13", now, body)

    header = f"v1a,{'A' * 86}== v2,{good[3:]} junk v1,%%% {good}"
    assert verify(secret, headers | {"webhook-signature": header}, body)
    # The same signature under another version tag does not count.
    with pytest.raises(SignatureMismatchError, match="no v1 entry"):
        verify(secret, headers | {"webhook-signature": f"v2,{good[3:]}"}, body)


@pytest.mark.parametrize("secret", ["whsec_not base64!", "whsec_", "", "whsec_abc$", []])
def test_a_malformed_secret_is_a_clear_error_not_a_binascii_traceback(secret):
    body = b"{}"
    headers = sign_like_hookline(generate_signing_secret(), "msg_14", int(time.time()), body)
    with pytest.raises(InvalidSecretError, match="webhook secret") as raised:
        verify(secret, headers, body)
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__ or raised.value.__context__ is None


# --- Properties over the input space --------------------------------------------------------------

keys = st.binary(min_size=24, max_size=64)
msg_ids = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="."),
    min_size=1,
    max_size=40,
)
skews = st.integers(min_value=-250, max_value=250)


def _whsec(key: bytes) -> str:
    return "whsec_" + base64.b64encode(key).decode()


@settings(max_examples=200, deadline=None)
@given(key=keys, msg_id=msg_ids, skew=skews, body=st.text(max_size=300))
def test_both_libraries_accept_each_others_signatures(key, msg_id, skew, body):
    secret, stamp = _whsec(key), int(time.time()) + skew

    ours = sign_like_hookline(secret, msg_id, stamp, body.encode())
    theirs = sign_like_standardwebhooks(secret, msg_id, stamp, body)

    assert ours == theirs
    assert verify(secret, theirs, body) == VerifiedMessage(msg_id, stamp, body.encode())
    standardwebhooks.Webhook(secret).verify(body, ours, json_parse=False)


@settings(max_examples=200, deadline=None)
@given(key=keys, body=st.binary(min_size=1, max_size=300), data=st.data())
def test_any_changed_byte_of_the_body_is_refused(key, body, data):
    secret = _whsec(key)
    headers = sign_like_hookline(secret, "msg_p", 1_800_000_000, body)
    at = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    flip = data.draw(st.integers(min_value=1, max_value=255))
    tampered = body[:at] + bytes([body[at] ^ flip]) + body[at + 1 :]

    with pytest.raises(SignatureMismatchError):
        verify(secret, headers, tampered, now=1_800_000_000)


header_values = st.one_of(st.text(max_size=60), st.integers().map(str), st.just(""))


@settings(max_examples=300, deadline=None)
@given(
    msg_id=header_values,
    stamp=header_values,
    signature=st.one_of(
        header_values, st.lists(st.sampled_from(["v1,", "v1a,", "v1,AAAA", ",", " ", "v1,=="]))
    ).map(lambda v: v if isinstance(v, str) else " ".join(v)),
)
def test_hostile_headers_only_ever_raise_verification_errors(msg_id, stamp, signature):
    headers = {"webhook-id": msg_id, "webhook-timestamp": stamp, "webhook-signature": signature}
    with pytest.raises(VerificationError):
        verify(generate_signing_secret(), headers, b"{}")


def test_verified_message_is_frozen():
    message = VerifiedMessage(id="msg_1", timestamp=1, body=b'{"type":"a"}')
    with pytest.raises(AttributeError):
        message.id = "msg_2"  # type: ignore[misc]
    assert json.loads(message.body) == message.json()


def _datetime(timestamp: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
