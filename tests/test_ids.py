"""Whole numbers read from requests: what a 64-bit column holds, or nothing."""

from __future__ import annotations

import pytest

from config.ids import LARGEST, whole_number


@pytest.mark.parametrize(
    ("raw", "number"),
    [("0", 0), ("42", 42), ("007", 7), (str(LARGEST), LARGEST), ("0" * 19, 0)],
)
def test_ascii_digits_of_a_value_a_column_holds_are_read(raw, number):
    assert whole_number(raw) == number


@pytest.mark.parametrize(
    "raw",
    [str(LARGEST + 1), "9" * 19, "9" * 400, "", "-1", "+1", "1.0", "1e3", " 1", "１", "٣", None, 7],
)
def test_anything_else_is_none(raw):
    assert whole_number(raw) is None
