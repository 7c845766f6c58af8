"""Request bodies keep to the JSON types the OpenAPI schema states.

DRF's fields coerce: a CharField takes 12, a BooleanField takes 0 or "yes", an IntegerField "12".
A client generated from the schema sends the stated types; one that sends others has a bug, which
a 400 shows at once, where a guess would hide it. Serializers of JSON request bodies mix this in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import relations, serializers

_NAMES = {bool: "a boolean", int: "an integer", float: "a number", list: "an array",
          dict: "an object", str: "a string"}  # fmt: skip


def _expected(field: serializers.Field) -> tuple[type, ...] | None:
    """The JSON types `field` takes; None for fields that take any JSON or check it themselves
    (a ChoiceField refuses anything but one of its string choices, naming them)."""
    if isinstance(field, serializers.BooleanField):
        return (bool,)
    if isinstance(field, serializers.IntegerField):
        return (int,)
    if isinstance(field, serializers.FloatField | serializers.DecimalField):
        return (int, float)
    if isinstance(field, serializers.ListField | relations.ManyRelatedField):
        return (list,)
    if isinstance(field, serializers.MultipleChoiceField):
        return (list,)
    if isinstance(field, serializers.DictField):
        return (dict,)
    if isinstance(
        field,
        serializers.CharField
        | serializers.DateTimeField
        | serializers.DateField
        | relations.SlugRelatedField,
    ):
        return (str,)
    return None


def _type_error(field: serializers.Field, value: Any) -> str | None:
    expected = _expected(field)
    if value is None or expected is None:
        return None  # null is the field's own business (allow_null)
    if isinstance(value, bool) and bool not in expected:
        return f"Must be {_NAMES[expected[0]]}, not a boolean."
    if isinstance(value, float) and int in expected and float not in expected:
        if value.is_integer():
            return None  # JSON Schema counts 2.0 as an integer
        return "Must be an integer."
    if not isinstance(value, expected):
        return f"Must be {_NAMES[expected[0]]}."
    child = getattr(field, "child", None) or getattr(field, "child_relation", None)
    if isinstance(value, list) and child is not None:
        return next(filter(None, (_type_error(child, item) for item in value)), None)
    return None


class JsonTypes:
    """Refuse, field by field, JSON values of another type than the field's, before DRF coerces."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            errors = {
                name: [error]
                for name, field in self.fields.items()  # type: ignore[attr-defined]
                if not field.read_only
                and name in data
                and (error := _type_error(field, data[name]))
            }
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)  # type: ignore[misc]


@extend_schema_field({"type": "object", "additionalProperties": True})
class JsonObjectField(serializers.JSONField):
    """A JSON object, and typed so in the OpenAPI schema, where a JSONField means any value."""
