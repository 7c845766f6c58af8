"""Verify Hookline's webhooks, with the standard library alone.

    from hookline_receiver import VerificationError, verify

    message = verify(secret, headers, body)  # raises a VerificationError subclass to reject
    if (challenge := message.challenge()) is not None:
        ...  # Hookline's ownership check: answer 200 with {"challenge": challenge}

`hookline_receiver.django.verify_webhook` does all of it for a Django view (the `django` extra).
"""

from __future__ import annotations

from .signing import (
    DEFAULT_TOLERANCE,
    SECRET_PREFIX,
    SIGNATURE_VERSION,
    VERIFICATION_TYPE,
    InvalidHeadersError,
    InvalidSecretError,
    Secret,
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

__all__ = [
    "DEFAULT_TOLERANCE",
    "SECRET_PREFIX",
    "SIGNATURE_VERSION",
    "VERIFICATION_TYPE",
    "InvalidHeadersError",
    "InvalidSecretError",
    "Secret",
    "SignatureMismatchError",
    "TimestampTooNewError",
    "TimestampTooOldError",
    "VerificationError",
    "VerifiedMessage",
    "secret_key",
    "sign",
    "signature_header",
    "verify",
]
