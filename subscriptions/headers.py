"""Custom endpoint headers as people see them: values masked, and masked values sent back kept.

Header values are often a receiver's credentials (`Authorization`, API tokens). They are stored
encrypted, shown only as `••••` and their last 4 characters, and an update that sends back a
masked value unchanged keeps the stored value, so a form or a GET-modify-PUT round trip never has
to know the secret.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

MASK = "••••"
# Shorter values show no characters at all: 4 of 8 would be half the secret.
SHOWN_FROM_LENGTH = 12


def masked_value(value: str) -> str:
    """`••••` and the last 4 characters (only `••••` for a short value)."""
    return MASK + value[-4:] if len(value) >= SHOWN_FROM_LENGTH else MASK


def masked_headers(headers: dict[str, str]) -> dict[str, str]:
    return {name: masked_value(str(value)) for name, value in headers.items()}


def headers_with_kept_values(*, given: object, stored: dict[str, str]) -> object:
    """`given` with each masked value replaced by the stored value of that header.

    A value that looks masked but is not the mask of the stored value under the same name
    (case-insensitive) raises ValidationError: the caller must send the full value. Anything
    that is not a dict is returned as it is, for the validator to refuse.
    """
    if not isinstance(given, dict):
        return given
    by_name = {name.lower(): value for name, value in stored.items()}
    kept = {}
    for name, value in given.items():
        if isinstance(value, str) and value.startswith(MASK):
            current = by_name.get(str(name).lower())
            if current is None or masked_value(current) != value:
                raise ValidationError(
                    f"Header {name!r} holds a masked value that does not match its stored value: "
                    "send the full value, or the masked value unchanged to keep it."
                )
            value = current
        kept[name] = value
    return kept
