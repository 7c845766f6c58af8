"""Payload formats: the documented mapping of a message to JSON, XML and form bodies, and back."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl
from xml.etree import ElementTree

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from subscriptions.models import Endpoint
from webhooks.formats import (
    JSON,
    FormatError,
    RawJSON,
    parse_form,
    parse_xml,
    render,
    to_form,
    to_json,
    to_xml,
)

TYPE = "order.paid"
TIMESTAMP = "2026-11-29T10:58:36.643Z"
ORDER = {"customer": {"id": 42, "name": "Zoë"}, "items": [{"sku": "A1", "qty": 2}], "paid": True}

TRICKY = {
    "": "empty key",
    "1st": "starts with a digit",
    "two words": 1,
    "a:b": "colon",
    "xmlns": "reserved prefix",
    "XML_thing": "reserved prefix, any case",
    "prénom": "not ASCII",
    'q"<&>': "markup in a key",
    "line\nbreak\ttab\rcr": "whitespace in a key",
    "bell\x07": "control character in a key",
    "entry": "a key named like the escape element",
    "item": "a key named like an array element",
    "type": "a key named like the type attribute",
    "true_string": "true",
    "true_value": True,
    "false_value": False,
    "number_string": "42",
    "null_value": None,
    "empty_string": "",
    "blank": "  padded  ",
    "crlf": "a\r\nb\rc",
    "controls": "nul-free \x01\x08\x0b\x0c\x1f end",
    "noncharacters": "\ufffe\uffff",
    "markup": "<b>&amp;</b> ]]> \"'",
    "unicode": "日本語 🎉 \u2028",
    "numbers": [0, -1, 1.5, -0.25, 1e100, 10**30, 1.0, 2e-308],
    "nested_arrays": [[1, [2, []]], [], [[[]]], [{}]],
    "empty_object": {},
    "empty_array": [],
    "mixed": [None, True, "x", 3, {"k": [None]}],
}


# --- JSON -----------------------------------------------------------------------------------------


def test_json_body_is_compact_utf8_in_type_timestamp_data_order():
    body = to_json(event_type=TYPE, timestamp=TIMESTAMP, data=ORDER)

    assert (
        body
        == (
            '{"type":"order.paid","timestamp":"2026-11-29T10:58:36.643Z","data":{"customer":'
            '{"id":42,"name":"Zoë"},"items":[{"sku":"A1","qty":2}],"paid":true}}'
        ).encode()
    )


def test_json_body_carries_raw_json_data_byte_for_byte():
    data = RawJSON('{"b":1,"a":[1e308,6.02214076e23,-0.0,1.10],"s":"\\u00e9\\/"}')

    body = render(JSON, event_type="order.paid", timestamp="2026-01-01T00:00:00.000Z", data=data)

    assert body.content == (
        b'{"type":"order.paid","timestamp":"2026-01-01T00:00:00.000Z",'
        b'"data":{"b":1,"a":[1e308,6.02214076e23,-0.0,1.10],"s":"\\u00e9\\/"}}'
    )


def test_render_gives_each_format_its_content_type():
    content_types = {
        name: render(name, event_type=TYPE, timestamp=TIMESTAMP, data=ORDER).content_type
        for name in ("json", "xml", "form")
    }

    assert content_types == {
        "json": "application/json",
        "xml": "application/xml; charset=utf-8",
        "form": "application/x-www-form-urlencoded",
    }


def test_every_format_an_endpoint_can_choose_is_rendered():
    for payload_format in Endpoint.PayloadFormat.values:
        assert render(payload_format, event_type=TYPE, timestamp=TIMESTAMP, data=ORDER).content


def test_render_refuses_an_unknown_format():
    with pytest.raises(FormatError, match="yaml"):
        render("yaml", event_type=TYPE, timestamp=TIMESTAMP, data={})


# --- XML ------------------------------------------------------------------------------------------


def test_xml_body_follows_the_documented_mapping():
    body = to_xml(event_type=TYPE, timestamp=TIMESTAMP, data=ORDER)

    assert (
        body
        == (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            "<webhook><type>order.paid</type><timestamp>2026-11-29T10:58:36.643Z</timestamp>"
            '<data type="object"><customer type="object"><id type="number">42</id><name>Zoë</name>'
            '</customer><items type="array"><item type="object"><sku>A1</sku>'
            '<qty type="number">2</qty></item></items><paid type="boolean">true</paid></data>'
            "</webhook>"
        ).encode()
    )


def test_xml_scalars_say_their_type_and_strings_need_none():
    body = to_xml(
        event_type=TYPE,
        timestamp=TIMESTAMP,
        data={"s": "true", "b": True, "n": None, "i": 7, "o": {}, "a": []},
    )

    assert (
        b'<s>true</s><b type="boolean">true</b><n type="null"/><i type="number">7</i>'
        b'<o type="object"/><a type="array"/>'
    ) in body


def test_xml_keys_that_are_not_plain_names_become_entries():
    body = to_xml(
        event_type=TYPE, timestamp=TIMESTAMP, data={"two words": 1, 'q"<': "x", "xmlns": "y"}
    )

    assert b'<entry key="two words" type="number">1</entry>' in body
    assert b'<entry key="xmlns">y</entry>' in body
    assert b'<entry key="q&quot;&lt;">x</entry>' in body


def test_xml_round_trips_tricky_keys_and_values_exactly():
    body = to_xml(event_type=TYPE, timestamp=TIMESTAMP, data=TRICKY)

    parsed = parse_xml(body)

    assert parsed == {"type": TYPE, "timestamp": TIMESTAMP, "data": TRICKY}
    assert isinstance(parsed["data"]["numbers"][6], float)  # 1.0 stays a float, as in JSON
    assert isinstance(parsed["data"]["numbers"][5], int)


def test_xml_with_control_characters_is_still_well_formed_xml_1_0():
    body = to_xml(event_type=TYPE, timestamp=TIMESTAMP, data=TRICKY)

    root = ElementTree.fromstring(body)  # any conforming parser accepts it

    assert root.find("data/controls").get("encoding") == "base64"
    assert body.isascii() is False  # UTF-8 text is sent as is, not as character references
    assert b"\x01" not in body
    assert b"\x07" not in body


def test_xml_carriage_returns_survive_the_parsers_newline_normalisation():
    body = to_xml(event_type=TYPE, timestamp=TIMESTAMP, data={"crlf": "a\r\nb"})

    assert b"<crlf>a&#13;\nb</crlf>" in body
    assert ElementTree.fromstring(body).findtext("data/crlf") == "a\r\nb"


def test_xml_of_deeply_nested_data_renders_and_parses_back():
    data: dict[str, Any] = {"leaf": 1}
    for _ in range(400):
        data = {"n": [data]}

    body = to_xml(event_type=TYPE, timestamp=TIMESTAMP, data=data)

    assert parse_xml(body)["data"] == data


@pytest.mark.parametrize(
    "body",
    [
        b"not xml",
        b"<webhook><type>t</type></webhook>",
        b"<other><type>t</type><timestamp>s</timestamp><data type='object'/></other>",
        b"<webhook><type>t</type><timestamp>s</timestamp><data type='array'/></webhook>",
        b"<webhook><type>t</type><timestamp>s</timestamp>"
        b"<data type='object'><n type='number'>NaN</n></data></webhook>",
        b"<webhook><type>t</type><timestamp>s</timestamp>"
        b"<data type='object'><b type='boolean'>yes</b></data></webhook>",
        b"<webhook><type>t</type><timestamp>s</timestamp>"
        b"<data type='object'><a/><a/></data></webhook>",
        b"<webhook><type>t</type><timestamp>s</timestamp>"
        b"<data type='object'><a type='array'><x/></a></data></webhook>",
    ],
)
def test_parse_xml_refuses_bodies_that_do_not_follow_the_mapping(body):
    with pytest.raises(FormatError):
        parse_xml(body)


def test_parse_xml_refuses_entity_expansion():
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE webhook [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b"<webhook><type>&b;</type><timestamp>s</timestamp><data type='object'/></webhook>"
    )

    with pytest.raises(FormatError):
        parse_xml(bomb)


# --- Form fields ----------------------------------------------------------------------------------


def test_form_body_uses_bracket_notation_in_data_order():
    body = to_form(event_type=TYPE, timestamp=TIMESTAMP, data=ORDER)

    assert body == (
        b"type=order.paid&timestamp=2026-11-29T10%3A58%3A36.643Z&data[customer][id]=42"
        b"&data[customer][name]=Zo%C3%AB&data[items][0][sku]=A1&data[items][0][qty]=2"
        b"&data[paid]=true"
    )


def test_form_scalars_are_text_and_empty_containers_empty_values():
    body = to_form(
        event_type=TYPE,
        timestamp=TIMESTAMP,
        data={"t": True, "f": False, "s": "true", "n": None, "x": 1.5, "o": {}, "a": []},
    )

    assert body.endswith(
        b"&data[t]=true&data[f]=false&data[s]=true&data[n]=&data[x]=1.5&data[o]=&data[a]="
    )


def test_form_percent_encodes_values_and_brackets_inside_keys():
    body = to_form(
        event_type=TYPE, timestamp=TIMESTAMP, data={"a[b]": "x&y=z+1 2", "é": "€"}
    ).decode()

    assert "&data[a%5Bb%5D]=x%26y%3Dz%2B1+2&" in body
    assert body.endswith("&data[%C3%A9]=%E2%82%AC")


def test_form_reads_back_with_a_generic_form_parser():
    body = to_form(event_type=TYPE, timestamp=TIMESTAMP, data=ORDER).decode()

    assert parse_qsl(body, keep_blank_values=True) == [
        ("type", TYPE),
        ("timestamp", TIMESTAMP),
        ("data[customer][id]", "42"),
        ("data[customer][name]", "Zoë"),
        ("data[items][0][sku]", "A1"),
        ("data[items][0][qty]", "2"),
        ("data[paid]", "true"),
    ]


def test_form_parses_back_to_nested_data_with_text_leaves():
    body = to_form(event_type=TYPE, timestamp=TIMESTAMP, data=TRICKY)

    parsed = parse_form(body)

    assert parsed == {"type": TYPE, "timestamp": TIMESTAMP, "data": as_form_text(TRICKY)}
    assert parsed["data"]["numbers"] == ["0", "-1", "1.5", "-0.25", "1e+100", str(10**30), "1.0",
                                         "2e-308"]  # fmt: skip
    assert parsed["data"]["nested_arrays"] == [["1", ["2", ""]], "", [[""]], [""]]
    assert parsed["data"]["null_value"] == parsed["data"]["empty_object"] == ""


def test_form_objects_keyed_0_to_n_read_back_as_arrays_below_data():
    body = to_form(event_type=TYPE, timestamp=TIMESTAMP, data={"0": "a", "o": {"0": "x", "1": "y"}})

    assert parse_form(body)["data"] == {"0": "a", "o": ["x", "y"]}


def test_form_of_empty_data_reads_back_as_an_empty_object():
    body = to_form(event_type=TYPE, timestamp=TIMESTAMP, data={})

    assert body == b"type=order.paid&timestamp=2026-11-29T10%3A58%3A36.643Z&data="
    assert parse_form(body)["data"] == {}


@pytest.mark.parametrize(
    "body",
    [
        b"type=t",
        b"type=t&timestamp=s&data[a]=1&data[a]=2",
        b"type=t&timestamp=s&data[a]=1&data[a][b]=2",
        b"type=t&timestamp=s&data=x",
        b"type=t&timestamp=s&other=1",
        b"type=t&timestamp=s&data[a=1",
        b"type=t&timestamp=s&data[a]=%FF",
        b"type[x]=t&timestamp=s",
    ],
)
def test_parse_form_refuses_bodies_that_do_not_follow_the_mapping(body):
    with pytest.raises(FormatError):
        parse_form(body)


# --- Properties -----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=25,
)
payloads = st.dictionaries(st.text(), json_values, max_size=6)


@settings(max_examples=300, deadline=None)
@given(data=payloads, event_type=st.text(), timestamp=st.text())
def test_xml_round_trips_any_json_payload(data, event_type, timestamp):
    body = to_xml(event_type=event_type, timestamp=timestamp, data=data)

    assert parse_xml(body) == {"type": event_type, "timestamp": timestamp, "data": data}


@settings(max_examples=300, deadline=None)
@given(data=payloads)
def test_form_round_trips_any_json_payload_as_text(data):
    body = to_form(event_type=TYPE, timestamp=TIMESTAMP, data=data)

    assert parse_form(body)["data"] == as_form_text(data)


@settings(max_examples=100, deadline=None)
@given(data=payloads)
def test_json_body_is_the_message_as_compact_json(data):
    body = to_json(event_type=TYPE, timestamp=TIMESTAMP, data=data)

    message = {"type": TYPE, "timestamp": TIMESTAMP, "data": data}
    assert body == json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


def as_form_text(value: Any, *, top: bool = True) -> Any:
    """A form body as docs/receiving.md says it reads back: text leaves, empty containers as ""."""
    if isinstance(value, dict):
        if not value:
            return {} if top else ""
        converted = {key: as_form_text(item, top=False) for key, item in value.items()}
        if not top and set(converted) == {str(index) for index in range(len(converted))}:
            return [converted[str(index)] for index in range(len(converted))]
        return converted
    if isinstance(value, list):
        return [as_form_text(item, top=False) for item in value] if value else ""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return value
