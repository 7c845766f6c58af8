"""The API's JSON parser: DRF's, refusing what would otherwise crash later with a 500."""

from __future__ import annotations

import io
import json
import re
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

LONE_SURROGATE = (
    "JSON parse error - the document holds an unpaired surrogate (such as \\ud800), "
    "which is not text."
)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, turning absurdly deep nesting and lone surrogates into a 400.

    JSON may escape half of a UTF-16 pair (`"\\ud800"`); Python decodes it to a string that
    cannot be encoded as UTF-8, so echoing it in an error message, storing it or signing it
    fails far from here. Refused once, for every field of every route.
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        raw = stream.read() if stream is not None else b""
        try:
            data = super().parse(io.BytesIO(raw), media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply.") from None
        refuse_lone_surrogates(raw, data, parser_context)
        return data


def refuse_lone_surrogates(raw: bytes, data: Any, parser_context: Any) -> None:
    """Raise ParseError if the body `raw`, parsed as `data`, holds half of a UTF-16 pair."""
    if _may_escape_a_surrogate(raw, parser_context) and _holds_lone_surrogate(data):
        raise ParseError(LONE_SURROGATE)


# In UTF-8 a surrogate can only arrive escaped (raw, it is not valid UTF-8 and fails decoding):
# a body without `\uD8…`-`\uDF…` needs no second look, which spares large payloads the walk.
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _may_escape_a_surrogate(raw: bytes, parser_context: Any) -> bool:
    encoding = str((parser_context or {}).get("encoding") or "utf-8").lower().replace("-", "")
    return encoding not in ("utf8", "ascii") or SURROGATE_ESCAPE.search(raw) is not None


def _holds_lone_surrogate(data: Any) -> bool:
    # Encoding back to UTF-8 visits every key and string at C speed; only surrogates fail it.
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    except (RecursionError, ValueError):
        return False  # parsed, so nothing the encoder refuses is text
    return False
