"""Rules every JSON payload must follow, whatever its event type, and the payload's JSON text.

A payload is kept as the JSON text the host wrote, so that receivers get its key order, number
spellings (`1.10`, `1e308`, `-0.0`) and string escapes as they were sent: Python's floats and
PostgreSQL's `jsonb` would each change some of them. The parsed value is for checks, queries and
the XML and form formats.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from webhooks.formats import RawJSON

# The json module's own string reader (typeshed leaves it out).
_scan_string = json.decoder.scanstring  # type: ignore[attr-defined]


def contains_nul(value: object) -> bool:
    """Whether any string (key or value) in a JSON document holds the NUL character."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return False


def same_json(first: object, second: object) -> bool:
    """Whether two parsed JSON documents are the same, key order and number spelling aside.

    Python's `==` alone takes `true` for `1` and `false` for `0`, which JSON does not. A loop,
    not recursion: a payload may be nested as deeply as the parser allowed.
    """
    pending = [(first, second)]
    while pending:
        left, right = pending.pop()
        if isinstance(left, dict) and isinstance(right, dict):
            if left.keys() != right.keys():
                return False
            pending.extend((value, right[key]) for key, value in left.items())
        elif isinstance(left, list) and isinstance(right, list):
            if len(left) != len(right):
                return False
            pending.extend(zip(left, right, strict=True))
        elif isinstance(left, dict | list) or isinstance(right, dict | list):
            return False
        elif isinstance(left, bool) or isinstance(right, bool):
            if type(left) is not type(right) or left != right:
                return False
        elif left != right:
            return False
    return True


# A JSON string, escapes included.
_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_BETWEEN_STRINGS = re.compile(f"({_STRING})")
_SPACE = re.compile(r"[ \t\n\r]")
_TOKEN = re.compile(rf'{_STRING}|[{{}}\[\],:]|[^{{}}\[\],:"\s]+')


def json_compact(text: str) -> str:
    """Valid JSON `text` without the whitespace between its tokens; nothing else changes."""
    if _SPACE.search(text) is None:
        return text
    # Strings at odd indexes, kept; what lies between them loses its whitespace, which valid JSON
    # allows there only between tokens. (A regex substitution over the text was 2 to 5 times
    # slower: one match per token.)
    parts = _BETWEEN_STRINGS.split(text)
    parts[0::2] = ["".join(between.split()) for between in parts[0::2]]
    return "".join(parts)


def json_indented(text: str, indent: int = 2) -> str:
    """Valid JSON `text` laid out for reading like `json.dumps(indent=…)`, its tokens unchanged."""
    tokens = _TOKEN.findall(text)
    parts: list[str] = []
    depth = 0
    for index, token in enumerate(tokens):
        if token in ("{", "["):
            if index + 1 < len(tokens) and tokens[index + 1] in ("}", "]"):
                parts.append(token)  # empty: closed on the same line
                continue
            depth += 1
            parts.append(token + "\n" + " " * indent * depth)
        elif token in ("}", "]"):
            if index and tokens[index - 1] in ("{", "["):
                parts.append(token)
                continue
            depth -= 1
            parts.append("\n" + " " * indent * depth + token)
        elif token == ",":
            parts.append(",\n" + " " * indent * depth)
        elif token == ":":
            parts.append(": ")
        else:
            parts.append(token)
    return "".join(parts)


def json_same(first: str, second: str) -> bool:
    """Whether two JSON texts hold the same value: numbers compared exactly, key order ignored."""
    try:
        return same_json(_exact(first), _exact(second))
    except RecursionError:  # nested as deep as the parser allows: compare the texts alone
        return first == second


def _exact(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers disagree on which of two equal keys wins; the schema must check what receivers read.
    members = dict(pairs)
    if len(members) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or _added(seen, key))
        raise ValueError(f"the key {twice!r} appears twice in one object")
    return members


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, object_pairs_hook=_unique_members)


def json_object_members(text: str) -> tuple[Any, dict[str, str]]:
    """`text` parsed, and for a JSON object, the text of each member's value as written.

    Raises ValueError for text that is not JSON, holds NaN or Infinity, or repeats a key within an
    object; RecursionError for absurd nesting.
    """
    position = _skip_space(text, 0)
    if not text.startswith("{", position):
        return _DECODER.decode(text), {}
    values: dict[str, Any] = {}
    texts: dict[str, str] = {}
    position = _skip_space(text, position + 1)
    closing = text.startswith("}", position)
    while not closing:
        if not text.startswith('"', position):
            raise json.JSONDecodeError(
                "Expecting property name enclosed in double quotes", text, position
            )
        key, position = _scan_string(text, position + 1)
        position = _skip_space(text, position)
        if not text.startswith(":", position):
            raise json.JSONDecodeError("Expecting ':' delimiter", text, position)
        start = _skip_space(text, position + 1)
        value, position = _DECODER.raw_decode(text, start)
        if key in values:
            raise ValueError(f"the key {key!r} appears twice in one object")
        values[key], texts[key] = value, text[start:position]
        position = _skip_space(text, position)
        closing = text.startswith("}", position)
        if not closing:
            if not text.startswith(",", position):
                raise json.JSONDecodeError("Expecting ',' delimiter", text, position)
            position = _skip_space(text, position + 1)
    if _skip_space(text, position + 1) != len(text):
        raise json.JSONDecodeError("Extra data", text, position + 1)
    return values, texts


def json_array_items(text: str) -> list[tuple[Any, str]]:
    """Each element of the JSON array `text`, parsed, with its text as written.

    Raises as `json_object_members` does, and ValueError for text that is not an array.
    """
    position = _skip_space(text, 0)
    if not text.startswith("[", position):
        raise ValueError("not a JSON array")
    items: list[tuple[Any, str]] = []
    position = _skip_space(text, position + 1)
    closing = text.startswith("]", position)
    while not closing:
        value, end = _DECODER.raw_decode(text, position)
        items.append((value, text[position:end]))
        position = _skip_space(text, end)
        closing = text.startswith("]", position)
        if not closing:
            if not text.startswith(",", position):
                raise json.JSONDecodeError("Expecting ',' delimiter", text, position)
            position = _skip_space(text, position + 1)
    if _skip_space(text, position + 1) != len(text):
        raise json.JSONDecodeError("Extra data", text, position + 1)
    return items


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\n\r":
        position += 1
    return position


def pretty_json(value: Any) -> str:
    """JSON indented for reading; a string that is JSON is re-indented, any other string kept.

    RawJSON (a payload as the host sent it) is indented with its tokens as they are.
    """
    if isinstance(value, RawJSON):
        return json_indented(value.text)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def _added(seen: set[str], key: str) -> bool:
    """Add `key` to `seen`; False, so that a search goes on."""
    seen.add(key)
    return False
