"""Transformations on their own: checked when saved, applied within a budget, encoded by format."""

from __future__ import annotations

import contextlib
import copy
import gc
import json
import sys
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webhooks import transformations
from webhooks.formats import parse_form, parse_xml, render
from webhooks.transformations import (
    BUDGET_SECONDS,
    MAX_EXPRESSION_LENGTH,
    TransformError,
    body_of,
    transform,
    transformation_problem,
)

MESSAGE = {
    "type": "order.paid",
    "timestamp": "2026-01-02T03:04:05.678Z",
    "data": {"order_id": "ord_1", "amount": 4200, "items": [{"sku": "A1", "qty": 2}]},
}
CHAT = '{"text": "Order " & data.order_id & " paid"}'
# A run is stopped within 100 ms of the processor's time; the wall clock may show more on a
# loaded machine, but never a hang.
STOPPED_WITHIN = 0.1
NEVER_HANGS = 1.0


class Stopwatch:
    """The processor time this thread spent, and the wall-clock time, inside the block.

    The garbage collector is held off meanwhile: a full collection of the test process's heap,
    thousands of tests' worth, can take longer than a run's whole budget, and would be counted
    as the run's.
    """

    def __enter__(self) -> Stopwatch:
        gc.collect()
        gc.disable()
        self.cpu, self.wall = time.thread_time(), time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu, self.wall = time.thread_time() - self.cpu, time.monotonic() - self.wall
        gc.enable()


def test_the_chat_example_makes_its_body():
    body = body_of(CHAT, MESSAGE)

    assert body.content == b'{"text":"Order ord_1 paid"}'
    assert body.content_type == "application/json"


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("$", MESSAGE),
        ("data.items", [{"sku": "A1", "qty": 2}]),
        ("data.amount / 100", 42),  # a whole number is a JSON integer
        ("data.amount / 1000", 4.2),
        ('"text"', "text"),
        ("null", None),
        ("true", True),
        ('{"kept": 1, "gone": data.missing}', {"kept": 1}),  # undefined members are left out
        ('$sum(data.items.qty) & " items"', "2 items"),
        (
            '$ ~> |data|{"currency": "EUR"}|',
            {**MESSAGE, "data": {**MESSAGE["data"], "currency": "EUR"}},
        ),
    ],
)
def test_a_transformation_gives_any_json_value(expression, value):
    assert transform(expression, MESSAGE) == value
    assert json.loads(body_of(expression, MESSAGE).content) == value


def test_the_message_given_to_a_transformation_is_left_as_it_was():
    message = copy.deepcopy(MESSAGE)

    transform('$ ~> |data|{"amount": 1}, ["items"]|', message)
    transform('$merge([data, {"amount": 1}])', message)

    assert message == MESSAGE


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("data.missing", "gave no result (undefined)"),
        ("function($x) { $x }", "not JSON"),
        ('{"f": $uppercase}', "not JSON"),
        ("$foo()", "failed: Attempted to invoke a non-function"),
        ('$number("x")', "failed:"),
        ('$eval("1 + 1")', "called $eval, which transformations may not"),
    ],
)
def test_a_run_that_fails_says_why(expression, problem):
    with pytest.raises(TransformError, match="^The transformation") as error:
        transform(expression, MESSAGE)

    assert problem in str(error.value)


@pytest.mark.parametrize(
    "expression",
    [
        "$",
        '{"type": type, "timestamp": timestamp, "data": data}',
        "$ ~> |$|{}|",
    ],
)
@pytest.mark.parametrize("payload_format", ["json", "xml", "form"])
def test_a_message_kept_whole_is_sent_as_hookline_builds_it(expression, payload_format):
    plain = render(
        payload_format,
        event_type=MESSAGE["type"],
        timestamp=MESSAGE["timestamp"],
        data=MESSAGE["data"],
    )

    assert body_of(expression, MESSAGE, payload_format) == plain


def test_xml_encodes_the_objects_members_under_webhook():
    body = body_of('{"text": "Order " & data.order_id, "amount": data.amount}', MESSAGE, "xml")

    assert body.content == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<webhook><text>Order ord_1</text><amount type="number">4200</amount></webhook>'
    )
    assert body.content_type == "application/xml; charset=utf-8"


def test_form_fields_encode_the_objects_members_by_name():
    body = body_of('{"text": "Order " & data.order_id, "items": data.items}', MESSAGE, "form")

    assert body.content == b"text=Order+ord_1&items[0][sku]=A1&items[0][qty]=2"
    assert body.content_type == "application/x-www-form-urlencoded"


@pytest.mark.parametrize("payload_format", ["xml", "form"])
@pytest.mark.parametrize(
    ("expression", "kind"), [('"text"', "a single value"), ("[1]", "an array")]
)
def test_xml_and_form_need_an_object(payload_format, expression, kind):
    with pytest.raises(TransformError, match=f"needs an object to encode, not {kind}"):
        body_of(expression, MESSAGE, payload_format)


def test_a_transformed_body_round_trips_through_the_formats_readers():
    expression = '{"type": "chat", "timestamp": timestamp, "data": {"text": data.order_id}}'

    assert parse_xml(body_of(expression, MESSAGE, "xml").content)["data"] == {"text": "ord_1"}
    assert parse_form(body_of(expression, MESSAGE, "form").content)["data"] == {"text": "ord_1"}


# --- Checked when saved ---------------------------------------------------------------------------


@pytest.mark.parametrize("expression", ["", CHAT, "$", "data.items[qty > 1].sku"])
def test_valid_expressions_are_accepted(expression):
    assert transformation_problem(expression) is None


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ('{"text": }', "Not a valid JSONata expression: "),
        ('{"text": }', "(at position 10)"),
        ("data[", "Expected ] before end of expression (at position 5)"),
        ('"open', "String literal must be terminated"),
        ("$match(data.order_id, /ord_(a+)+$/)", "Regular expressions are not available"),
        ("data\x00", "cannot contain the NUL character"),
        ("data.\ud800", "unpaired surrogate"),
        ("   ", "leave it empty for none"),
        ("x" * (MAX_EXPRESSION_LENGTH + 1), "at most 10,000 characters"),
        ("(" * 4000 + "1" + ")" * 4000, "nested too deeply"),
        ("a." * 4999 + "a", "too long or too complex to compile"),
    ],
)
def test_invalid_expressions_are_refused_with_a_clear_problem(expression, problem):
    # The compile budget is the thread's processor time, so that a loaded machine does not
    # refuse a valid expression; it is measured the same way here.
    started = time.thread_time()

    found = transformation_problem(expression)

    assert found is not None
    assert problem in found
    assert time.thread_time() - started < 2 * transformations.COMPILE_BUDGET_SECONDS


JSONATA_ALPHABET = "$.[](){}\"'`~>|&*+-/%=<>!?:;,@#^ 0129abdtxyz\\\n"


@given(st.text(max_size=200) | st.text(alphabet=JSONATA_ALPHABET, max_size=60))
def test_any_text_is_accepted_or_refused_never_raised(expression):
    problem = transformation_problem(expression)

    if problem is None and expression:
        with contextlib.suppress(TransformError):
            transform(expression, MESSAGE)


# --- The budget -----------------------------------------------------------------------------------

RUNAWAYS = {
    "endless recursion": "($f := function($n) { $f($n + 1) }; $f(0))",
    "deep recursion": "($f := function($n) { 1 + $f($n + 1) }; $f(0))",
    "long built-in call": "$distinct([1..90000])",
    "long filter": "[1..90000][$ % 7 = 1 and $ % 3 = 2 and $string($) != '5']",
    "string doubling": "($f := function($s) { $f($s & $s) }; $f('x'))",
    "array doubling": "($f := function($a) { $f($append($a, $a)) }; $f([1]))",
    "huge padding": '$pad("x", 1000000000)',
    "huge range": "[1..10000000]",
    "huge result": "[1..90000].{'n': $}",
}


@pytest.mark.parametrize("expression", RUNAWAYS.values(), ids=RUNAWAYS.keys())
def test_a_runaway_transformation_is_stopped_in_time(expression):
    with Stopwatch() as took, pytest.raises(TransformError) as error:
        body_of(expression, MESSAGE)

    assert took.cpu < STOPPED_WITHIN
    assert took.wall < NEVER_HANGS
    assert any(
        words in str(error.value)
        for words in ("ms budget and was stopped", "nested deeper", "larger than")
    ), error.value


def test_the_budget_stops_a_loop_inside_one_builtin_call():
    # One evaluation step that runs for seconds: only the watchdog can stop it.
    with (
        Stopwatch() as took,
        pytest.raises(TransformError, match=f"its {BUDGET_SECONDS * 1000:.0f} ms budget"),
    ):
        transform("$distinct(data)", {"data": list(range(90000))})

    assert BUDGET_SECONDS <= took.cpu < STOPPED_WITHIN
    assert took.wall < NEVER_HANGS


def test_a_stopped_run_leaves_nothing_pending_in_its_thread():
    for _ in range(20):
        with pytest.raises(TransformError):
            transform("$distinct(data)", {"data": list(range(90000))})
        # An interruption still pending would go off in this loop instead.
        deadline = time.monotonic() + 0.03
        while time.monotonic() < deadline:
            pass
    assert transform(CHAT, MESSAGE) == {"text": "Order ord_1 paid"}


def test_threads_run_the_same_transformation_at_once():
    results: list[object] = []

    def run() -> None:
        for number in range(200):
            message = {**MESSAGE, "data": {"order_id": f"o{number}"}}
            results.append(transform(CHAT, message) == {"text": f"Order o{number} paid"})

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == [True] * 800


def test_a_runaway_in_one_thread_does_not_stop_another():
    stopped: list[str] = []
    runaway = threading.Thread(
        target=lambda: stopped.append(_problem_of(RUNAWAYS["long built-in call"]))
    )
    runaway.start()
    quick = [transform(CHAT, MESSAGE) for _ in range(200)]
    runaway.join()

    assert quick == [{"text": "Order ord_1 paid"}] * 200
    assert "budget" in stopped[0]


def _problem_of(expression: str) -> str:
    try:
        transform(expression, MESSAGE)
    except TransformError as error:
        return str(error)
    return ""


def test_now_gives_the_time_of_the_run():
    before = time.time()
    transform("$now()", MESSAGE)  # compiled and cached
    time.sleep(0.02)

    stamp = transform("$toMillis($now())", MESSAGE)

    assert stamp / 1000 >= before + 0.02


def test_a_scope_an_interrupted_run_left_behind_is_not_seen_by_the_next_run():
    expression = '$exists($secret) ? $secret : "none"'
    compiled, top, _ = transformations._compiled(expression)
    # What an interruption landing in the library's own restore would leave: a run's inner scope.
    left_behind = compiled.create_frame(top)
    left_behind.bind("secret", "another tenant's value")
    compiled.environment = left_behind

    assert transform(expression, MESSAGE) == "none"


def test_no_garbage_collection_runs_while_an_expression_compiles():
    # A full collection in a large process can take longer than the compile budget.
    during_parse = []

    def count(phase, info):
        frame = sys._getframe(1)
        while frame is not None:
            if phase == "start" and "/jsonata/" in frame.f_code.co_filename:
                during_parse.append(info["generation"])
                return
            frame = frame.f_back

    thresholds = gc.get_threshold()
    gc.set_threshold(1, 1, 1)  # a collection at nearly every allocation, were it enabled
    gc.callbacks.append(count)
    try:
        transformations._compile("(" * 200 + '{"a": data.b & "c"}' + ")" * 200)
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*thresholds)

    assert during_parse == []
    assert gc.isenabled()
