"""Example payloads made from event types' JSON Schemas, shown in the event-type picker."""

from __future__ import annotations

import pytest

from subscriptions.examples import schema_example, schema_example_valid

SCHEMAS = [
    {"type": "object", "properties": {"id": {"type": "string", "format": "uuid"}}},
    {
        "type": "object",
        "required": ["order_id", "amount", "currency", "items"],
        "properties": {
            "order_id": {"type": "string", "minLength": 5, "maxLength": 20},
            "amount": {"type": "integer", "minimum": 100, "maximum": 1000},
            "ratio": {"type": "number", "exclusiveMinimum": 0},
            "currency": {"enum": ["EUR", "USD"]},
            "paid_at": {"type": "string", "format": "date-time"},
            "items": {"type": "array", "minItems": 2, "items": {"$ref": "#/$defs/item"}},
            "note": {"type": ["null", "string"]},
            "test": {"const": True},
        },
        "additionalProperties": False,
        "$defs": {"item": {"type": "object", "properties": {"sku": {"type": "string"}}}},
    },
    {"allOf": [{"type": "object", "properties": {"a": {"type": "boolean"}}}], "required": ["a"]},
    {
        "type": "object",
        "properties": {"kind": {"oneOf": [{"type": "integer"}, {"type": "string"}]}},
    },
    {
        "type": "object",
        "properties": {"email": {"type": "string", "format": "email", "examples": ["a@b.example"]}},
    },
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_the_example_made_from_a_schema_matches_it(schema):
    example = schema_example(schema)

    assert schema_example_valid(schema, example), example


def test_the_example_fills_required_and_optional_properties_by_their_rules():
    example = schema_example(SCHEMAS[1])

    assert example["order_id"] == "string"
    assert example["amount"] == 100
    assert example["currency"] == "EUR"
    assert example["paid_at"] == "2026-01-31T12:00:00Z"
    assert example["items"] == [{"sku": "string"}, {"sku": "string"}]
    assert example["note"] == "string"
    assert example["test"] is True
    assert list(example)[:4] == ["order_id", "amount", "currency", "items"]


def test_a_recursive_schema_ends_and_no_schema_gives_an_empty_object():
    recursive = {"type": "object", "properties": {"child": {"$ref": "#"}}}

    assert schema_example(None) == {}
    nested = schema_example(recursive)
    depth = 0
    while isinstance(nested, dict) and "child" in nested:
        nested, depth = nested["child"], depth + 1
    assert depth < 12


def test_a_schemas_own_example_wins():
    assert schema_example({"type": "object", "examples": [{"x": 1}]}) == {"x": 1}
