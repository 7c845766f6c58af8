"""OpenAPI post-processing: every operation documents the error responses it can give."""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA = {
    "type": "object",
    "required": ["code", "detail"],
    "properties": {
        "code": {"type": "string"},
        "detail": {"type": "string", "description": "What went wrong, in one sentence."},
        "fields": {
            "type": "object",
            "additionalProperties": True,
            "description": "For invalid input: each bad field and its messages.",
        },
    },
}

ERRORS = {
    "400": "Invalid input.",
    "401": "Missing, invalid or revoked API key.",
    "403": "The key may not do this.",
    "404": "No such object for this key's tenant.",
    "405": "Method not allowed.",
    "406": "Only JSON responses are offered.",
    "409": "The request conflicts with the object's state.",
    "413": "The body is over its route's limit (WEBHOOKS_MAX_PAYLOAD_BYTES for events).",
    "415": "Send JSON.",
    "429": "Rate limit exceeded; see Retry-After.",
}


def add_error_responses(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path in result.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            for code, description in ERRORS.items():
                responses.setdefault(code, {"description": description, "content": reference})
    return result
