"""An example payload for an event type, made from its JSON Schema, to show beside the type.

The schema's own `examples`, `default`, `const` and `enum` come first; otherwise each type gets
a plain value of the right shape (strings honour `format` and `minLength`, numbers their bounds),
objects get their required properties and arrays one item. `$ref`s within the schema are
followed, to a bounded depth so a recursive schema ends. The result is a help for the reader,
checked against the schema by the caller when it matters (`schema_example_valid`); a schema too
clever for these rules (`not`, `pattern`, conflicting `allOf`) may get an example it refuses.
"""

from __future__ import annotations

from typing import Any

from webhooks.schemas import schema_validator

MAX_DEPTH = 8
_FORMATS = {
    "date-time": "2026-01-31T12:00:00Z",
    "date": "2026-01-31",
    "time": "12:00:00Z",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "hostname": "example.com",
}


def schema_example(schema: object) -> Any:
    """A value shaped like `schema` wants, for showing; `{}` without a schema."""
    if not isinstance(schema, dict):
        return {}
    return _example(schema, root=schema, depth=0)


def schema_example_valid(schema: object, example: Any) -> bool:
    if not isinstance(schema, dict):
        return True
    return schema_validator(schema).is_valid(example)


def _example(schema: Any, *, root: dict[str, Any], depth: int) -> Any:
    if not isinstance(schema, dict) or depth > MAX_DEPTH:
        return None
    schema = _resolved(schema, root)
    for keyword in ("const", "default"):
        if keyword in schema:
            return schema[keyword]
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        return schema["examples"][0]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for combinator in ("allOf", "anyOf", "oneOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            merged = {key: value for key, value in schema.items() if key != combinator}
            return _example({**merged, **_resolved(options[0], root)}, root=root, depth=depth + 1)
    return _by_type(schema, root=root, depth=depth)


def _resolved(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    reference = schema.get("$ref")
    if not isinstance(reference, str) or not reference.startswith("#"):
        return schema
    target: Any = root
    for part in reference.lstrip("#").strip("/").split("/"):
        if not part:
            continue
        key = part.replace("~1", "/").replace("~0", "~")
        target = target.get(key) if isinstance(target, dict) else None
    rest = {key: value for key, value in schema.items() if key != "$ref"}
    return {**target, **rest} if isinstance(target, dict) else rest


def _by_type(schema: dict[str, Any], *, root: dict[str, Any], depth: int) -> Any:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), kind[0] if kind else None)
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else None
    if kind == "object":
        return _object(schema, root=root, depth=depth)
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1) or 1)) if "items" in schema else 0
        item = _example(schema.get("items"), root=root, depth=depth + 1)
        return [item for _ in range(min(count, 3))]
    if kind == "string":
        return _string(schema)
    if kind in ("integer", "number"):
        return _number(schema, integer=kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return {}


def _object(schema: dict[str, Any], *, root: dict[str, Any], depth: int) -> dict[str, Any]:
    given_properties, given_required = schema.get("properties"), schema.get("required")
    properties: dict[str, Any] = given_properties if isinstance(given_properties, dict) else {}
    required: list[Any] = given_required if isinstance(given_required, list) else []
    # Required ones first, then the others too: an example shows what may come.
    names = [name for name in required if name in properties]
    names += [name for name in properties if name not in names]
    return {
        name: _example(properties[name], root=root, depth=depth + 1)
        for name in names
        if isinstance(name, str)
    }


def _string(schema: dict[str, Any]) -> str:
    text = _FORMATS.get(str(schema.get("format")), "string")
    shortest = schema.get("minLength")
    if isinstance(shortest, int) and len(text) < shortest:
        text = text + "x" * (shortest - len(text))
    longest = schema.get("maxLength")
    if isinstance(longest, int) and len(text) > longest:
        text = text[: max(longest, 0)]
    return text


def _number(schema: dict[str, Any], *, integer: bool) -> int | float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    value: float = 1
    if isinstance(low, int | float) and not isinstance(low, bool):
        value = low + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
    if isinstance(high, int | float) and not isinstance(high, bool) and value > high:
        value = high
    return int(value) if integer else value
