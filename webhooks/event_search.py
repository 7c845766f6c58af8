"""Finding a tenant's events by one value in their payload: `data.customer.id=42` in a query.

A query parameter named `data.` and a path of object keys asks for the events whose payload has
that value there. The value is matched as the JSON string it is written as, and also as the
JSON number, `true`, `false` or `null` it spells, if it spells one: `data.customer.id=42` finds
`{"customer": {"id": 42}}` and `{"customer": {"id": "42"}}`.

On PostgreSQL each alternative is a containment test (`payload @> '{"customer": {"id": 42}}'`)
that the GIN index on the payload (`jsonb_path_ops`, webhooks migration 0006) answers, however
many events a tenant has. Other databases compare the value at the path, without an index.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import F, Q, QuerySet
from django.db.models.fields.json import KeyTransform

from webhooks.models import Event

PREFIX = "data."
MAX_DEPTH = 5
MAX_KEY_LENGTH = 64
MAX_VALUE_LENGTH = 255
# A key starts with a letter or "_": a key of digits alone would read as an array index.
KEY = r"[A-Za-z_][A-Za-z0-9_-]{0,63}"
PARAMETER_PATTERN = rf"^data(\.{KEY}){{1,{MAX_DEPTH}}}$"
PATH_RULE = (
    f"A payload filter is data. and a path of 1 to {MAX_DEPTH} object keys joined by dots "
    "(such as data.customer.id), each key 1 to 64 letters, digits, '_' or '-' and not starting "
    "with a digit or '-'."
)
_PARAMETER = re.compile(PARAMETER_PATTERN)
_JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_JSON_LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None}


class PayloadFilterError(ValueError):
    """A payload filter that cannot be applied; the message says why, in one sentence."""


@dataclass(frozen=True)
class PayloadMatch:
    """Events whose payload holds one of `values` at `path` (object keys, outermost first)."""

    path: tuple[str, ...]
    values: tuple[Any, ...]


def payload_parameters(names: list[str]) -> list[str]:
    """The query parameter names that are payload filters (those starting `data.`)."""
    return [name for name in names if name.startswith(PREFIX)]


def payload_match_parsed(name: str, value: str) -> PayloadMatch:
    """The match a `data.<path>=<value>` query parameter asks for; raises PayloadFilterError
    for a path that is not PATH_RULE's, or an empty or overlong value."""
    if not _PARAMETER.fullmatch(name):
        raise PayloadFilterError(PATH_RULE)
    if not value:
        raise PayloadFilterError("Give the value to look for; a payload filter cannot be empty.")
    if len(value) > MAX_VALUE_LENGTH:
        raise PayloadFilterError(
            f"A payload filter's value is at most {MAX_VALUE_LENGTH} characters."
        )
    return PayloadMatch(path=tuple(name.split(".")[1:]), values=(value, *_json_readings(value)))


def _json_readings(value: str) -> list[Any]:
    """What else `value` spells as a JSON scalar: a finite number, true, false or null."""
    if value in _JSON_LITERALS:
        return [_JSON_LITERALS[value]]
    if not _JSON_NUMBER.fullmatch(value):
        return []
    number = json.loads(value)
    if isinstance(number, float) and not math.isfinite(number):
        return []  # 1e400: no payload holds it (they are refused)
    return [number]


def events_matching(events: QuerySet[Event], match: PayloadMatch) -> QuerySet[Event]:
    """`events` narrowed to those whose payload holds one of the match's values at its path."""
    wanted = Q()
    if connection.vendor == "postgresql":
        for value in match.values:
            wanted |= Q(payload__contains=_nested(match.path, value))
        return events.filter(wanted)
    at_path: Any = F("payload")
    for key in match.path:
        # Not `payload__<key>`: a key such as "in" or "contains" would read as a lookup.
        at_path = KeyTransform(key, at_path)
    for value in match.values:
        wanted |= Q(payload_at_path=value)
    return events.alias(payload_at_path=at_path).filter(wanted)


def _nested(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    document: Any = value
    for key in reversed(path):
        document = {key: document}
    return document
