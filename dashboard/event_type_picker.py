"""The event-type picker of the endpoint form: the catalog grouped by prefix (`order.` holds
`order.paid` and `order.refunded`), each type with its description, its JSON Schema and an
example payload made from that schema."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import groupby

from django import forms

from config.ids import whole_number
from subscriptions.examples import schema_example
from subscriptions.models import EventType


@dataclass(frozen=True)
class PickerType:
    event_type: EventType
    checked: bool
    schema_text: str  # "" without a schema
    example_text: str


@dataclass(frozen=True)
class PickerGroup:
    prefix: str
    types: list[PickerType] = field(default_factory=list)

    @property
    def checked_count(self) -> int:
        return sum(1 for kind in self.types if kind.checked)


def event_type_groups(form: forms.ModelForm) -> list[PickerGroup]:
    """The form's event-type choices grouped by their first dotted part, ticked as the form has
    them (the posted values, or the endpoint's own)."""
    kinds = list(form.fields["event_types"].queryset)  # type: ignore[attr-defined]
    chosen = _chosen_ids(form)
    return [
        PickerGroup(prefix, [_picker_type(kind, kind.pk in chosen) for kind in members])
        for prefix, members in groupby(kinds, key=lambda kind: kind.name.split(".", 1)[0])
    ]


def _chosen_ids(form: forms.ModelForm) -> set[int]:
    if form.is_bound:
        raw = form.data.getlist("event_types") if hasattr(form.data, "getlist") else []
        return {pk for value in raw if (pk := whole_number(value)) is not None}
    if form.instance.pk:
        return set(form.instance.event_types.values_list("id", flat=True))
    return set()


def _picker_type(kind: EventType, checked: bool) -> PickerType:
    schema_text = json.dumps(kind.schema, indent=2, ensure_ascii=False) if kind.schema else ""
    example = {
        "type": kind.name,
        "timestamp": "2026-01-31T12:00:00.000Z",
        "data": schema_example(kind.schema),
    }
    return PickerType(kind, checked, schema_text, json.dumps(example, indent=2, ensure_ascii=False))
