"""`same_json`: whether a reused idempotency key comes with the same payload."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webhooks.payloads import same_json

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@given(json_values)
def test_a_document_is_the_same_as_itself_after_a_round_trip(value):
    assert same_json(value, json.loads(json.dumps(value)))


@given(json_values, json_values)
def test_same_json_agrees_with_equality_once_booleans_are_told_apart(first, second):
    def tagged(value):  # booleans marked, so that == no longer takes true for 1
        if isinstance(value, bool):
            return ("bool", value)
        if isinstance(value, dict):
            return {key: tagged(item) for key, item in value.items()}
        if isinstance(value, list):
            return [tagged(item) for item in value]
        return value

    assert same_json(first, second) == (tagged(first) == tagged(second))


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}, True),
        ({"n": 1}, {"n": 1.0}, True),
        ({"n": 1}, {"n": True}, False),
        ({"n": 0}, {"n": False}, False),
        ([True], [1], False),
        ({"n": None}, {}, False),
        ({"n": []}, {"n": {}}, False),
        ([1, 2], [2, 1], False),
        ("1", 1, False),
    ],
)
def test_same_json_examples(first, second, same):
    assert same_json(first, second) is same


def test_deeply_nested_documents_do_not_exhaust_the_stack():
    deep: object = 1
    for _ in range(50_000):
        deep = [deep]
    assert same_json(deep, deep)
