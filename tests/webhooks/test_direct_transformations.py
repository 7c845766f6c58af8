"""The simple shapes of transformation are evaluated directly, and give what the library gives."""

import itertools

import pytest
from jsonata import Jsonata

from webhooks import transformations
from webhooks.direct_transformations import NotDirect, direct_evaluation
from webhooks.transformations import TransformError, transform

SIMPLE = [
    '{"text": "Order " & data.order_id & " paid"}',
    '{"text": "Order " & $string(data.n) & " paid", "sent_at": data.sent_at}',
    "data.order_id",
    '"n=" & data.n & ", f=" & data.f & ", flag=" & data.flag',
    "$string(data)",
    "$string(data.nested)",
    '{"o": {"a": data.order_id, "b": data.missing}, "k": 5, "s": "x", "half": 0.5}',
    '{"d": data}',
    '{"deep": data.nested.deep, "gone": data.nested.missing.deeper}',
    '{"f": data.f, "big": data.big, "tiny": data.tiny, "whole": data.whole}',
    '{"via_string": data.text.length}',
    '"" & data.missing',
    "data.missing",
    '{"null": data.nothing, "list": data.items, "in_list": data.items.sku}',
    "{}",
]
MESSAGES = [
    {
        "type": "order.paid",
        "timestamp": "2026-01-02T03:04:05.678Z",
        "data": {
            "order_id": "ord_1",
            "n": 7,
            "sent_at": 1767323045.678,
            "f": 0.1 + 0.2,
            "big": 1e21,
            "tiny": 1e-7,
            "whole": 5.0,
            "flag": True,
            "text": 'quotes " and \\ and\nnew line, ünïcödé ✓',
            "nested": {"deep": {"x": [1, {"y": None}], "z": None}},
            "nothing": None,
            "items": [{"sku": "A1"}, {"sku": "B2"}],
        },
    },
    {"type": "t", "timestamp": "2026-01-02T03:04:05.678Z", "data": {"order_id": 12, "n": -0.0}},
    {"type": "t", "timestamp": "2026-01-02T03:04:05.678Z", "data": "a string, not an object"},
    {"type": "t", "timestamp": "2026-01-02T03:04:05.678Z", "data": {"order_id": {"a": [1, 2]}}},
]


def by_library(expression, message):
    compiled = Jsonata(expression)
    compiled.set_validate_input(False)
    compiled.set_output_convert_nulls(False)
    return _outcome(lambda: transformations._plain(compiled.evaluate(message)))


def by_direct(expression, message):
    direct = direct_evaluation(Jsonata(expression).ast)
    assert direct is not None, f"{expression} is one of the simple shapes"
    return _outcome(lambda: transformations._plain(direct(message)))


def _outcome(evaluate):
    try:
        return ("value", evaluate())
    except NotDirect:
        return ("library", None)
    except BaseException as error:  # noqa: BLE001 - the kind of failure is what is compared
        return ("error", type(error).__name__)


@pytest.mark.parametrize(("expression", "message"), list(itertools.product(SIMPLE, MESSAGES)))
def test_a_simple_shape_gives_what_the_library_gives_or_hands_the_message_over(expression, message):
    direct = by_direct(expression, message)

    if direct[0] != "library":
        assert direct == by_library(expression, message)


def test_the_usual_messages_are_evaluated_directly():
    # Without this, every message could be handed to the library and the comparison hold.
    direct = [
        (expression, message["data"])
        for expression, message in itertools.product(SIMPLE, MESSAGES)
        if by_direct(expression, message)[0] != "library"
    ]

    assert len(direct) >= 40
    assert by_direct(SIMPLE[0], MESSAGES[0]) == ("value", {"text": "Order ord_1 paid"})


@pytest.mark.parametrize(
    "message_data",
    [
        {"nothing": None},  # a null on the path
        {"items": [{"sku": "A1"}]},  # an array on the path
        "a string",  # a step into a scalar
    ],
)
def test_a_message_beyond_plain_lookups_is_handed_to_the_library(message_data):
    direct = direct_evaluation(Jsonata("data.nothing & data.items.sku & data.x").ast)

    with pytest.raises(NotDirect):
        direct({"data": message_data})


@pytest.mark.parametrize(
    "expression",
    [
        "$",
        "$$.data",
        "data.items[0]",
        "data.items[sku = 'A1']",
        "data.*",
        "data.amount + 1",
        "$sum(data.items.qty)",
        "$uppercase(data.order_id)",
        '{"a": 1, "a": 2}',
        "{data.order_id: 1}",
        "($string := function($x){'hacked'}; $string(data.n))",
        'data.flag ? "yes" : "no"',
        "[data.order_id]",
        "true",
        "null",
        '{"t": data.order_id}.t',
        "data.order_id ~> $string()",
    ],
)
def test_other_shapes_are_left_to_the_library(expression):
    assert direct_evaluation(Jsonata(expression).ast) is None


def test_transform_takes_the_direct_path_and_the_library_for_the_rest():
    example = '{"text": "Order " & data.order_id & " paid", "items": data.items}'

    plain = transform(example, {"data": {"order_id": "ord_1"}})
    handed_over = transform(example, {"data": {"order_id": "ord_1", "items": [{"sku": "A1"}]}})

    assert plain == {"text": "Order ord_1 paid"}
    assert handed_over == {"text": "Order ord_1 paid", "items": [{"sku": "A1"}]}
    with pytest.raises(TransformError, match="gave no result"):
        transform("data.missing", {"data": {}})


def test_nulls_in_an_object_taken_from_the_message_are_kept():
    message = {"data": {"meta": {"note": None, "tags": [None]}}}

    assert transform('{"meta": data.meta}', message) == {"meta": {"note": None, "tags": [None]}}
    assert transform("$merge([data.meta, {}])", message) == {"note": None, "tags": [None]}
