"""Standard Webhooks signatures, as Hookline signs them and receivers verify them.

The one implementation lives in the `hookline_receiver` package (`receiver/` in this repository),
which receivers install on its own and Hookline installs with itself: the sender and the receiver
cannot drift apart. This module keeps the names that Hookline's code and its users import from
`webhooks.signing`.
"""

from __future__ import annotations

from hookline_receiver.signing import (
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
