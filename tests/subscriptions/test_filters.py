"""Endpoint filters on their own: what matches, what is refused when saved, and where."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cel
import pytest
from django.conf import settings
from hypothesis import given
from hypothesis import strategies as st

from subscriptions import filters
from subscriptions.filters import (
    FILTER_FUNCTIONS,
    MAX_FILTER_LENGTH,
    FilterError,
    endpoints_matching,
    filter_checked,
    filter_context,
    filter_evaluate,
    filter_problem,
)

ORDER = {
    "order_id": "ord_1",
    "amount": 12500,
    "currency": "EUR",
    "tags": ["gift", "express"],
    "customer": {"country": "FR", "vip": True},
    "lines": [{"sku": "A-1", "qty": 2}, {"sku": "B-7", "qty": 1}],
    "note": None,
}


def context(data=None, *, event_type="order.paid", tenant="acme",
            timestamp="2026-03-01T12:30:00.125Z"):  # fmt: skip
    return filter_context(
        event_type=event_type, data=ORDER if data is None else data, tenant=tenant,
        timestamp=timestamp,
    )  # fmt: skip


def matches(expression: str, data=None, **variables) -> bool:
    outcome = filter_evaluate(filter_checked(expression), context(data, **variables))
    assert outcome.error == "", outcome.error
    return outcome.matched


# --- What matches --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        'data.amount > 10000 && data.currency == "EUR"',
        "data.amount >= 12500 && data.amount < 12500.5",
        'data.currency in ["EUR", "USD"]',
        '"gift" in data.tags',
        'data.customer.country == "FR" && data.customer.vip',
        "has(data.customer) && !has(data.coupon)",
        "data.note == null",
        'data.lines.exists(line, line.sku == "B-7")',
        "data.lines.all(line, line.qty > 0)",
        "data.lines.exists_one(line, line.qty == 2)",
        "size(data.lines) == 2 && data.tags.size() == 2",
        'data.order_id.startsWith("ord_") && data.order_id.matches("^ord_[0-9]+$")',
        'type == "order.paid"',
        'type.startsWith("order.")',
        'tenant == "acme"',
        'timestamp >= "2026-03-01" && timestamp < "2026-03-02"',
        'timestamp(timestamp) > timestamp("2026-03-01T12:00:00Z")',
        "timestamp(timestamp).getHours() == 12",
        "type(data.amount) == int",
        'string(data.amount) == "12500"',
        'data["order_id"] == "ord_1"',
        "data.amount > 10000 // a comment\n  && data.currency != 'GBP'",
    ],
)
def test_a_filter_matches_an_event_for_which_it_is_true(expression):
    assert matches(expression)


@pytest.mark.parametrize(
    "expression",
    [
        'data.amount > 10000 && data.currency == "USD"',
        "data.amount > 12500",
        '"sale" in data.tags',
        'data.lines.exists(line, line.sku == "C-3")',
        "has(data.coupon)",
        'type == "order.refunded"',
        'tenant != "acme"',
        'timestamp < "2026-01-01"',
    ],
)
def test_a_filter_misses_an_event_for_which_it_is_false(expression):
    assert not matches(expression)


@pytest.mark.parametrize("expression", ["1", '"true"', "data.customer.vip ? 1 : 0", "null"])
def test_only_exactly_true_matches(expression):
    assert not matches(expression)


def test_an_empty_filter_is_no_filter():
    assert filter_problem("") is None


# --- A run-time error is no match, logged once per endpoint per hour --------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "data.coupon.code == 'X'",  # a missing field
        "data.currency > 3",  # a type mismatch
        "data.amount / 0 == 1",
        "data.lines[5].qty == 1",
        "int(data.currency) == 1",
        "9223372036854775807 + data.amount > 0",  # overflow
        'data.order_id.matches("(")',  # a bad regular expression
    ],
)
def test_an_error_at_run_time_is_no_match_and_says_why(expression):
    outcome = filter_evaluate(filter_checked(expression), context())

    assert not outcome.matched
    assert outcome.error


def test_a_failing_filter_is_logged_once_per_endpoint_until_the_hour_is_over(caplog, monkeypatch):
    monkeypatch.setattr(filters, "_logged_at", {})
    monkeypatch.setattr(filters, "LOG_EVERY", 0.3)
    failing = "data.coupon.code == 'X'"
    candidates = [(7, failing), (8, failing), (9, "data.amount > 0")]

    with caplog.at_level(logging.WARNING, logger="subscriptions.filters"):
        first = endpoints_matching(candidates, context())
        second = endpoints_matching(candidates, context())
        time.sleep(0.35)
        third = endpoints_matching(candidates, context())

    assert first == second == third == [9]
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 4  # endpoints 7 and 8, then both again once the period ended
    assert "Filter of endpoint 7 failed on event type order.paid" in logged[0]
    assert "coupon" in logged[0]
    assert "Filter of endpoint 8" in logged[1]


def test_a_stored_filter_that_no_longer_compiles_is_no_match_and_is_logged(caplog, monkeypatch):
    monkeypatch.setattr(filters, "_logged_at", {})

    with caplog.at_level(logging.WARNING, logger="subscriptions.filters"):
        assert endpoints_matching([(3, "data.amount >"), (4, "true")], context()) == [4]

    [record] = caplog.records
    assert "endpoint 3" in record.getMessage()
    assert "line 1, column 14" in record.getMessage()


def test_each_distinct_filter_is_evaluated_once_for_an_event():
    candidates = [(n, "data.amount > 10000") for n in range(1, 501)]
    candidates += [(n, "data.amount > 20000") for n in range(501, 1001)]

    assert endpoints_matching(candidates, context()) == list(range(1, 501))


def test_integers_too_large_for_cel_do_not_keep_other_fields_from_matching():
    data = {"amount": 12500, "huge": 10**400, "nested": [{"tiny": -(10**400)}]}

    assert matches("data.amount == 12500 && data.huge > 1.0", data)
    assert matches("data.nested[0].tiny < 0.0", data)


# --- Refused when saved, with the position -------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("data.amount >", "line 1, column 14: unexpected end"),
        ('data.amount > 10 &&\n  (data.currency == "EUR"', "line 2, column 26: missing ')'"),
        ("data.amount = 10", "line 1, column 13:"),
        ('"é" == data.x &&', "line 1, column 17: unexpected end"),  # columns count characters
        ("foo.bar == 1", "line 1, column 1: unknown variable 'foo'"),
        ("data.amount > 1 &&\n request.ip == 1", "line 2, column 2: unknown variable 'request'"),
        ("data.lines.exists(i, i.qty > 1) || i.qty > 2", "line 1, column 36: unknown variable 'i'"),
        ('data.currency.lowerAscii() == "eur"', "line 1, column 15: unknown function 'lowerAscii'"),
        ("exists(data.lines, i, i.qty > 1)", "line 1, column 1: exists() is called on a list"),
        ("data.lines.map(i, i.qty).size() > 1", "line 1, column 12: map() is not available"),
        ("data.lines.filter(i, i.qty > 1).size() > 0", "line 1, column 12: filter() is not"),
        (
            'data.lines.exists(i, data.tags.exists(t, t == "gift"))',
            "line 1, column 32: exists() inside another",
        ),
        ("cel.bind(x, data.amount, x > 1)", "line 1, column 1: unknown variable 'cel'"),
    ],
)
def test_a_bad_filter_is_refused_with_its_position(expression, message):
    problem = filter_problem(expression)

    assert problem is not None
    assert problem.startswith(message), problem
    with pytest.raises(FilterError, match="line"):
        filter_checked(expression)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("data.x == '\x00'", "The filter cannot contain the NUL character."),
        ('data.x == "\ud800"', "The filter holds an unpaired surrogate"),
        ("a" * (MAX_FILTER_LENGTH + 1), "The filter is 2,001 characters long; the limit is 2,000."),
        ("1 + " * 25_000 + "1 > 0", "The filter is 100,005 characters long"),
        (" \n\t", "The filter is blank"),
    ],
)
def test_hostile_text_is_refused_before_it_reaches_the_parser(expression, message):
    assert filter_problem(expression).startswith(message)


def test_the_longest_filter_allowed_compiles_and_runs():
    # The deepest tree the length allows; much deeper input would overflow the parser's stack.
    expression = "data.amount" + " + 1" * ((MAX_FILTER_LENGTH - len("data.amount > 0")) // 4)
    expression += " > 0"

    assert len(expression) <= MAX_FILTER_LENGTH
    assert matches(expression)


def test_strings_and_comments_are_not_read_as_names():
    assert matches('data.order_id != "foo(bar) && baz" // unknown(names) here\n && true')
    assert matches(r"r'\d' != data.currency && '''a\n'map'(''' != data.currency")


def test_every_function_a_filter_may_name_exists_in_the_cel_library():
    calls = {
        "has": "has(data.x)", "size": "size('a')", "contains": "'a'.contains('a')",
        "startsWith": "'a'.startsWith('a')", "endsWith": "'a'.endsWith('a')",
        "matches": "'a'.matches('a')", "int": "int(1)", "uint": "uint(1)",
        "double": "double(1)", "string": "string(1)", "bytes": "bytes('a')", "dyn": "dyn(1)",
        "type": "type(1)", "timestamp": "timestamp('2026-01-01T00:00:00Z')",
        "duration": "duration('1s')", "all": "[1].all(x, x > 0)",
        "exists": "[1].exists(x, x > 0)", "exists_one": "[1].exists_one(x, x > 0)",
    }  # fmt: skip
    moment = "timestamp('2026-01-01T00:00:00Z')"
    for getter in [name for name in FILTER_FUNCTIONS if name.startswith("get")]:
        calls[getter] = f"{moment}.{getter}()"

    assert set(calls) == FILTER_FUNCTIONS
    for name, call in calls.items():
        cel.compile(call).execute({"data": {}})  # raises for an undefined function
        assert filter_problem(call) is None, name


@given(st.text(max_size=80))
def test_no_text_makes_the_check_raise(expression):
    problem = filter_problem(expression)
    assert problem is None or isinstance(problem, str)


def test_every_example_in_the_filters_documentation_is_accepted():
    page = (Path(settings.BASE_DIR) / "docs" / "filters.md").read_text(encoding="utf-8")
    examples = page.split("## Examples", 1)[1].split("```", 2)[1].strip().splitlines()

    assert len(examples) >= 10
    for example in examples:
        assert filter_problem(example) is None, example


def test_a_long_error_is_cut_short():
    data = {"pattern": "(" + "a" * 5000}

    outcome = filter_evaluate(filter_checked('"a".matches(data.pattern)'), context(data))

    assert not outcome.matched
    assert 100 < len(outcome.error) < 260
