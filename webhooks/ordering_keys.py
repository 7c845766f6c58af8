"""Ordering keys: events that share one reach each endpoint in the order they were emitted."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

ORDERING_KEY_MAX_LENGTH = 128
# Visible ASCII: what an object's id looks like ("ord_1001", "customer:42/invoice"), and nothing
# that prints ambiguously in a log, a header or the dashboard.
ORDERING_KEY_PATTERN = rf"^[!-~]{{1,{ORDERING_KEY_MAX_LENGTH}}}$"
ORDERING_KEY_RULE = (
    f"An ordering key is 1 to {ORDERING_KEY_MAX_LENGTH} visible ASCII characters "
    "(letters, digits and punctuation; no spaces or control characters)."
)
_ORDERING_KEY = re.compile(ORDERING_KEY_PATTERN)


def ordering_key_checked(key: object) -> str:
    """`key` as stored ("" for none), if it may be an ordering key; raises ValidationError
    otherwise. A key is 1 to 128 visible ASCII characters: no spaces, no control characters."""
    if key is None or key == "":
        return ""
    if not isinstance(key, str) or not _ORDERING_KEY.fullmatch(key):
        raise ValidationError(ORDERING_KEY_RULE, code="invalid_ordering_key")
    return key
