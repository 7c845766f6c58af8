"""verify(), sign() and the challenge, with the standard library alone (unittest), so that the
same tests run on every Python the package supports."""

from __future__ import annotations

import base64
import json
import os
import time
import unittest
from datetime import datetime, timezone

from hookline_receiver import (
    InvalidHeadersError,
    InvalidSecretError,
    SignatureMismatchError,
    TimestampTooNewError,
    TimestampTooOldError,
    VerificationError,
    VerifiedMessage,
    secret_key,
    sign,
    signature_header,
    verify,
)

NOW = 1_800_000_000
BODY = b'{"type":"order.paid","timestamp":"2026-11-29T10:58:36.643Z","data":{"n":1}}'


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def signed(secrets: list[str], body: bytes = BODY, *, at: int = NOW, msg_id: str = "msg_1") -> dict:
    keys = [secret_key(secret) for secret in secrets]
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(at),
        "webhook-signature": signature_header(keys, msg_id, at, body),
    }


class GoodSignatures(unittest.TestCase):
    def test_a_signed_message_verifies_and_keeps_its_id_timestamp_and_bytes(self):
        secret = new_secret()
        message = verify(secret, signed([secret]), BODY, now=NOW)

        self.assertEqual(message, VerifiedMessage(id="msg_1", timestamp=NOW, body=BODY))
        self.assertEqual(message.json()["data"], {"n": 1})
        self.assertEqual(message.signed_at, datetime.fromtimestamp(NOW, tz=timezone.utc))

    def test_the_signature_is_the_standard_webhooks_hmac_over_id_timestamp_and_body(self):
        # A vector computed independently: HMAC-SHA256 of "msg_1.1800000000.{}" under 32 zero
        # bytes, base64-encoded.
        self.assertEqual(
            sign(bytes(32), "msg_1", NOW, b"{}"),
            "v1,FrZ0c6TBnDTMheX4KIbhDBQoy3mPAgOLFGUPY5OueHM=",
        )

    def test_secret_with_or_without_prefix_as_key_bytes_and_body_as_str(self):
        secret = new_secret()
        headers = signed([secret], "prix: 5 €".encode())
        for form in (secret, secret[len("whsec_") :], secret_key(secret), " " + secret + "\n"):
            self.assertEqual(verify(form, headers, "prix: 5 €", now=NOW).body, "prix: 5 €".encode())

    def test_headers_in_any_letter_case_or_as_wsgi_environ_keys(self):
        secret = new_secret()
        headers = signed([secret])
        title = {name.title(): value for name, value in headers.items()}
        environ = {"HTTP_" + name.upper().replace("-", "_"): v for name, v in headers.items()}
        self.assertEqual(verify(secret, title, BODY, now=NOW).id, "msg_1")
        self.assertEqual(verify(secret, environ, BODY, now=NOW).id, "msg_1")

    def test_tolerance_bounds_are_inclusive(self):
        secret = new_secret()
        headers = signed([secret], at=NOW - 10)
        self.assertEqual(verify(secret, headers, BODY, tolerance=10, now=NOW).timestamp, NOW - 10)


class Rotation(unittest.TestCase):
    def test_a_message_signed_by_two_secrets_verifies_with_either(self):
        old, new = new_secret(), new_secret()
        headers = signed([new, old])

        self.assertEqual(len(headers["webhook-signature"].split(" ")), 2)
        for secret in (old, new):
            self.assertEqual(verify(secret, headers, BODY, now=NOW).id, "msg_1")
        with self.assertRaises(SignatureMismatchError):
            verify(new_secret(), headers, BODY, now=NOW)

    def test_a_receiver_rotating_its_own_secret_may_pass_several(self):
        mine = new_secret()
        headers = signed([mine])
        self.assertEqual(verify([new_secret(), mine], headers, BODY, now=NOW).id, "msg_1")

    def test_signatures_of_other_versions_are_ignored(self):
        secret = new_secret()
        good = signed([secret])
        entry = good["webhook-signature"]
        mixed = dict(good, **{"webhook-signature": f"v2,{entry[3:]} junk v1,%%% {entry}"})
        self.assertEqual(verify(secret, mixed, BODY, now=NOW).id, "msg_1")
        with self.assertRaisesRegex(SignatureMismatchError, "no v1 entry"):
            verify(secret, dict(good, **{"webhook-signature": f"v2,{entry[3:]}"}), BODY, now=NOW)


class Rejections(unittest.TestCase):
    def test_a_changed_body_is_refused(self):
        secret = new_secret()
        with self.assertRaisesRegex(SignatureMismatchError, "no signature matches"):
            verify(secret, signed([secret]), BODY.replace(b'"n":1', b'"n":2'), now=NOW)

    def test_a_wrong_secret_is_refused(self):
        with self.assertRaises(SignatureMismatchError):
            verify(new_secret(), signed([new_secret()]), BODY, now=NOW)

    def test_stale_and_future_timestamps_are_refused(self):
        secret = new_secret()
        with self.assertRaisesRegex(TimestampTooOldError, "s old"):
            verify(secret, signed([secret], at=NOW - 301), BODY, now=NOW)
        with self.assertRaisesRegex(TimestampTooNewError, "in the future"):
            verify(secret, signed([secret], at=NOW + 301), BODY, now=NOW)
        # The default clock is the machine's: a message signed now passes, one an hour old fails.
        verify(secret, signed([secret], at=int(time.time())), BODY)
        with self.assertRaises(TimestampTooOldError):
            verify(secret, signed([secret], at=int(time.time()) - 3600), BODY)

    def test_missing_and_malformed_headers_are_named(self):
        secret = new_secret()
        for missing in ("webhook-id", "webhook-timestamp", "webhook-signature"):
            headers = signed([secret])
            del headers[missing]
            with self.assertRaisesRegex(InvalidHeadersError, f"missing header.*{missing}"):
                verify(secret, headers, BODY, now=NOW)
        for name, value in [
            ("webhook-timestamp", "soon"),
            ("webhook-timestamp", "١٨٠٠٠٠٠٠٠٠"),
            ("webhook-id", "msg.1"),
            ("webhook-signature", "   "),
        ]:
            with self.subTest(name=name, value=value), self.assertRaises(InvalidHeadersError):
                verify(secret, dict(signed([secret]), **{name: value}), BODY, now=NOW)

    def test_every_rejection_is_a_verification_error_but_a_bad_secret_is_not(self):
        for error in (InvalidHeadersError, TimestampTooOldError, SignatureMismatchError):
            self.assertTrue(issubclass(error, VerificationError))
        self.assertFalse(issubclass(InvalidSecretError, VerificationError))
        for secret in ("whsec_not base64!", "whsec_", "", []):
            with self.subTest(secret=secret), self.assertRaisesRegex(InvalidSecretError, "secret"):
                verify(secret, signed([new_secret()]), BODY, now=NOW)


class Challenge(unittest.TestCase):
    def message(self, body: object) -> VerifiedMessage:
        return VerifiedMessage(id="msg_1", timestamp=NOW, body=json.dumps(body).encode())

    def test_the_ownership_check_carries_its_challenge(self):
        body = {"type": "hookline.verification", "data": {"challenge": "abc-123"}}
        self.assertEqual(self.message(body).challenge(), "abc-123")

    def test_a_signed_challenge_is_found_after_verification(self):
        secret = new_secret()
        body = json.dumps(
            {"type": "hookline.verification", "timestamp": "…", "data": {"challenge": "xyz"}}
        ).encode()
        self.assertEqual(verify(secret, signed([secret], body), body, now=NOW).challenge(), "xyz")

    def test_other_messages_and_malformed_bodies_have_none(self):
        for body in [
            {"type": "order.paid", "data": {"note": "hookline.verification", "challenge": "a"}},
            {"type": "hookline.verification", "data": {"challenge": 12}},
            {"type": "hookline.verification", "data": ["abc"]},
            ["hookline.verification", {"challenge": "abc"}],
        ]:
            with self.subTest(body=body):
                self.assertIsNone(self.message(body).challenge())
        deep = b'{"type":"hookline.verification"' + b"[" * 100_000
        self.assertIsNone(VerifiedMessage(id="m", timestamp=NOW, body=deep).challenge())

    def test_a_verified_message_is_frozen(self):
        message = self.message({})
        with self.assertRaises(AttributeError):
            message.id = "msg_2"  # type: ignore[misc]


if __name__ == "__main__":
    unittest.main()
