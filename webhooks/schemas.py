"""Event-type JSON Schemas: checked when saved, applied to payloads, and never a fetch.

jsonschema resolves a `$ref` it does not hold by retrieving its URL, so a schema saying
`{"$ref": "http://10.0.0.5/…"}` or `{"$ref": "file:///etc/…"}` would make the web process
reach past the network policy or read local files. Here references resolve only within the
schema itself (and the JSON Schema meta-schemas jsonschema ships): a registry that retrieves
nothing, and a save-time check that refuses any reference but `#…`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import referencing

# Keywords whose string value names another schema; `$recursiveRef` may only be "#".
REFERENCE_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")

# Empty, with no `retrieve`: a reference to anything outside the schema is unresolvable.
_OFFLINE = referencing.Registry()


def schema_validator(schema: dict[str, Any] | bool) -> jsonschema.protocols.Validator:
    """A validator for `schema` that resolves references only within it; never fetches."""
    validator_class = jsonschema.validators.validator_for(schema)
    return validator_class(schema, registry=_OFFLINE)


def schema_problem(schema: object) -> str | None:
    """Why `schema` cannot be an event type's schema, in one sentence; None when it can."""
    if not isinstance(schema, dict):
        return "not an object"
    outside = next(_non_local_references(schema), None)
    if outside is not None:
        return (
            f"the reference {outside[:200]!r} points outside the schema; only references "
            "within it (starting with #) are allowed"
        )
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
        # Applying it to a few values resolves its references: a dangling $ref fails here.
        probe: object
        for probe in ({}, [], "", 0, None):
            list(schema_validator(schema).iter_errors(probe))
    except jsonschema.SchemaError as error:
        return error.message
    except Exception as error:  # unresolvable references and the like
        return str(error)
    return None


def _non_local_references(schema: dict[str, Any]) -> Iterator[str]:
    """Every reference in `schema` that does not start with `#` (a pointer into the schema)."""
    pending: list[object] = [schema]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            for keyword in REFERENCE_KEYWORDS:
                target = item.get(keyword)
                if isinstance(target, str) and not target.startswith("#"):
                    yield target
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
