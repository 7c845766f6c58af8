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
    "413": "The body is over its route's limit (WEBHOOKS_MAX_PAYLOAD_BYTES for events, "
    "WEBHOOKS_BATCH_MAX_BYTES for a batch), or a batch holds more than 500 events.",
    "415": "Send JSON.",
    "429": "Rate limit exceeded, or too many refused API keys from this address; see Retry-After.",
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


def require_response_fields(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    """Every field of a response object is present in every response (null where nullable), so
    the schema says so: generated clients then type them as always there, not optional."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if _is_request_component(name) or name == "Error" or "properties" not in component:
            continue
        component["required"] = list(component["properties"])
    return result


def _is_request_component(name: str) -> bool:
    # COMPONENT_SPLIT_REQUEST names request bodies …Request, and partial updates Patched….
    return name.endswith("Request") or name.startswith("Patched")


def ids_start_at_one(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    """Integer ids in paths are primary keys, which start at 1."""
    for path in result.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                if parameter.get("in") == "path" and schema.get("type") == "integer":
                    schema["minimum"] = 1
    return result


NO_NUL = "^[^\\u0000]*$"
# DRF trims the whitespace around a text value (str.strip) before checking it is not blank, so a
# required one must hold something else. Spelled out, since a schema's `\s` is JavaScript's,
# which leaves out \u001c-\u001f and \u0085.
_PYTHON_WHITESPACE = (
    r"\t\n\u000b\u000c\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
)
NOT_BLANK = rf"^[^\u0000]*[^{_PYTHON_WHITESPACE}\u0000][^\u0000]*$"


def strings_without_nul(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    """Text fields refuse NUL (PostgreSQL cannot store it) and, where required, blank values
    (whitespace only), so request strings say so."""
    schemas = result.get("components", {}).get("schemas", {})
    for name, component in schemas.items():
        if _is_request_component(name):
            for field in component.get("properties", {}).values():
                _refuse_nul(field)
                _refuse_nul(field.get("items", {}))
    for path in result.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                _refuse_nul(parameter.get("schema", {}))
    return result


def _refuse_nul(schema: dict[str, Any]) -> None:
    if schema.get("type") == "string" and not {"pattern", "enum", "format"} & schema.keys():
        schema["pattern"] = NOT_BLANK if schema.get("minLength", 0) >= 1 else NO_NUL
