"""Payload formats: the body bytes and Content-Type of a message, as JSON, XML or form fields.

Every format carries the same three things, `type`, `timestamp` and `data`; the mapping of each
is part of the wire contract (docs/receiving.md, "Payload formats", shows one event in each):

JSON (`application/json`): `{"type":…,"timestamp":…,"data":…}`, compact, UTF-8; `data` given as
`RawJSON` (the payload's text as the host wrote it) is written as it is, byte for byte.

XML (`application/xml; charset=utf-8`): an XML declaration, then
`<webhook><type>…</type><timestamp>…</timestamp><data type="object">…</data></webhook>`.
- An object's members are child elements named by their key. A key that is not a plain ASCII
  name (`[A-Za-z_][A-Za-z0-9_.-]*`, not starting with "xml") becomes `<entry key="…">`.
- An array's values are `<item>` children, in order.
- An element without a `type` attribute holds a string. Every other value says what it is:
  `type="number"` (JSON notation: `42`, `-0.5`, `1e+100`), `type="boolean"` (`true`/`false`),
  `type="null"`, `type="object"`, `type="array"`.
- A carriage return is written `&#13;` so that it survives the parser's newline normalisation.
  A string holding characters XML 1.0 cannot carry at all (control characters other than tab,
  line feed and carriage return; U+FFFE, U+FFFF) is sent as base64 of its UTF-8 with
  `encoding="base64"`; such a key is sent the same way in `key`, with `key-encoding="base64"`.
So the body parses back to exactly the event's data (`parse_xml`).

Form (`application/x-www-form-urlencoded`): `type=…&timestamp=…&data[customer][id]=42&…`, one
field per leaf, depth first, in the data's order, in the bracket notation that PHP, Rails and
most form parsers read; an array's values are indexed from 0 (`data[items][0][sku]=A1`).
Names and values are UTF-8 percent-encoded (space as `+`); the brackets between keys are sent as
is, brackets inside a key percent-encoded. Leaves are text: strings as they are, numbers in JSON
notation, booleans `true`/`false`, and null, empty objects and empty arrays as an empty value
(`data[note]=`). `parse_form` reads a body back into nested dicts and lists with text leaves.

The module needs only the standard library and defusedxml, so receivers can copy it to read
bodies back.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple
from urllib.parse import quote_plus, unquote_plus

from defusedxml import ElementTree as SafeElementTree

JSON, XML, FORM = "json", "xml", "form"  # the formats' names, as stored on an endpoint
JSON_CONTENT_TYPE = "application/json"
XML_CONTENT_TYPE = "application/xml; charset=utf-8"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


class Body(NamedTuple):
    content: bytes
    content_type: str


class RawJSON:
    """JSON text to be written as it is, not re-serialised: number spellings and key order stay."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RawJSON) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"RawJSON({self.text!r})"


class FormatError(ValueError):
    """A payload format Hookline does not know, or a body that does not follow its mapping."""


def render(
    payload_format: str, *, event_type: str, timestamp: str, data: dict[str, Any] | RawJSON
) -> Body:
    """The body of one message in `payload_format`; raises FormatError for an unknown format.

    `data` may be RawJSON for the JSON format only.
    """
    try:
        write, content_type = _WRITERS[payload_format]
    except KeyError:
        raise FormatError(f"Unknown payload format {payload_format!r}.") from None
    return Body(write(event_type=event_type, timestamp=timestamp, data=data), content_type)


def render_value(payload_format: str, value: Any) -> Body:
    """The body of a message that a transformation reshaped into `value`, in `payload_format`.

    JSON carries any JSON value. XML and form fields need an object: its members are encoded as
    a message's `type`, `timestamp` and `data` are, so an object of those three gives the body
    `render` would. Raises FormatError for a value the format cannot carry.
    """
    if payload_format == JSON:
        try:
            content = json.dumps(
                value, separators=(",", ":"), ensure_ascii=False, allow_nan=False
            ).encode()
        except (TypeError, ValueError) as error:  # UnicodeEncodeError is a ValueError
            raise FormatError(f"The body is not JSON: {error}.") from None
        return Body(content, JSON_CONTENT_TYPE)
    if payload_format not in _WRITERS:
        raise FormatError(f"Unknown payload format {payload_format!r}.")
    if not isinstance(value, dict):
        kind = "an array" if isinstance(value, list) else "a single value"
        raise FormatError(
            f"The {payload_format.upper()} format needs an object to encode, not {kind}: "
            'make the transformation give an object, such as {"text": …}.'
        )
    write = _xml_document if payload_format == XML else _form_fields
    return Body(write(value), _WRITERS[payload_format][1])


def to_json(*, event_type: str, timestamp: str, data: dict[str, Any] | RawJSON) -> bytes:
    if isinstance(data, RawJSON):
        # The envelope serialised as for any other payload, the data's text spliced in as it is.
        head = json.dumps(
            {"type": event_type, "timestamp": timestamp}, separators=(",", ":"), ensure_ascii=False
        )
        return f'{head[:-1]},"data":{data.text}}}'.encode()
    message = {"type": event_type, "timestamp": timestamp, "data": data}
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


# --- XML ------------------------------------------------------------------------------------------
# Written by hand rather than through ElementTree: every byte is signed and documented, so the
# output must not change with the Python version, and ElementTree leaves a carriage return in text
# unescaped, which parsers then read back as a line feed.

_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
_NOT_IN_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTRIBUTE_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\t": "&#9;", "\n": "&#10;",
     "\r": "&#13;"}
)  # fmt: skip


def to_xml(*, event_type: str, timestamp: str, data: dict[str, Any]) -> bytes:
    return _xml_document({"type": event_type, "timestamp": timestamp, "data": data})


def _xml_document(members: dict[str, Any]) -> bytes:
    """`<webhook>` holding one element per member."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<webhook>']
    # An explicit stack instead of recursion: payloads may nest as deep as JSON allows.
    pending: list[str | tuple[str, str, Any]] = [
        _xml_member(key, member) for key, member in reversed(members.items())
    ]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            parts.append(item)
            continue
        tag, attributes, value = item
        if isinstance(value, dict) and value:
            parts.append(f'<{tag}{attributes} type="object">')
            pending.append(f"</{tag}>")
            pending.extend(_xml_member(key, member) for key, member in reversed(value.items()))
        elif isinstance(value, list) and value:
            parts.append(f'<{tag}{attributes} type="array">')
            pending.append(f"</{tag}>")
            pending.extend(("item", "", member) for member in reversed(value))
        else:
            parts.append(_xml_element(tag, attributes, value))
    parts.append("</webhook>")
    return "".join(parts).encode()


def _xml_member(key: str, value: Any) -> tuple[str, str, Any]:
    if _XML_NAME.match(key) and key[:3].lower() != "xml":
        return key, "", value
    if _NOT_IN_XML.search(key):
        return "entry", f' key="{_base64(key)}" key-encoding="base64"', value
    return "entry", f' key="{key.translate(_ATTRIBUTE_ESCAPES)}"', value


def _xml_element(tag: str, attributes: str, value: Any) -> str:
    """A leaf: a scalar, an empty object or an empty array."""
    if isinstance(value, str):
        if _NOT_IN_XML.search(value):
            return f'<{tag}{attributes} encoding="base64">{_base64(value)}</{tag}>'
        if not value:
            return f"<{tag}{attributes}/>"
        return f"<{tag}{attributes}>{value.translate(_TEXT_ESCAPES)}</{tag}>"
    if value is None:
        return f'<{tag}{attributes} type="null"/>'
    if isinstance(value, bool):
        return f'<{tag}{attributes} type="boolean">{"true" if value else "false"}</{tag}>'
    if isinstance(value, int | float):
        return f'<{tag}{attributes} type="number">{json.dumps(value)}</{tag}>'
    if isinstance(value, dict):
        return f'<{tag}{attributes} type="object"/>'
    if isinstance(value, list):
        return f'<{tag}{attributes} type="array"/>'
    raise FormatError(f"{type(value).__name__} is not a JSON value.")


def _base64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def parse_xml(body: bytes | str) -> dict[str, Any]:
    """An XML body read back: `{"type", "timestamp", "data"}`, `data` exactly as it was sent.

    Safe on untrusted input (no DTDs, no entity expansion); raises FormatError for a body that is
    not well-formed or does not follow the mapping.
    """
    try:
        root = SafeElementTree.fromstring(body, forbid_dtd=True)
    except (SyntaxError, ValueError) as error:  # expat's ParseError, defusedxml's refusals
        raise FormatError(f"Not well-formed XML: {error}") from None
    fields = {child.tag: child for child in root}
    if root.tag != "webhook" or set(fields) != {"type", "timestamp", "data"} or len(root) != 3:
        raise FormatError("Expected <webhook> with <type>, <timestamp> and <data>.")
    message = {name: _xml_value(element) for name, element in fields.items()}
    if not isinstance(message["data"], dict):
        raise FormatError("<data> must hold an object.")
    if not isinstance(message["type"], str) or not isinstance(message["timestamp"], str):
        raise FormatError("<type> and <timestamp> must hold strings.")
    return {"type": message["type"], "timestamp": message["timestamp"], "data": message["data"]}


def _xml_value(element: Any) -> Any:
    """The JSON value of `element`; containers are filled with an explicit stack, not recursion."""
    root: list[Any] = []
    pending: list[tuple[Any, list[Any] | dict[str, Any], str]] = [(element, root, "")]
    while pending:
        node, parent, key = pending.pop()
        value = _xml_scalar_or_empty_container(node)
        if isinstance(parent, list):
            parent.append(value)
        else:
            parent[key] = value
        if isinstance(value, dict):
            children: list[tuple[Any, list[Any] | dict[str, Any], str]] = [
                (child, value, _xml_key(child)) for child in node
            ]
            if len({key for _, _, key in children}) < len(children):
                raise FormatError(f"<{node.tag}> holds the same key twice.")
        elif isinstance(value, list):
            children = [(_xml_item(child), value, "") for child in node]
        else:
            continue
        pending.extend(reversed(children))
    return root[0]


def _xml_scalar_or_empty_container(node: Any) -> Any:
    kind = node.get("type", "string")
    text = node.text or ""
    if kind in ("object", "array"):
        if text.strip() or any((child.tail or "").strip() for child in node):
            raise FormatError(f"<{node.tag} type={kind!r}> holds text.")
        return {} if kind == "object" else []
    if len(node):
        raise FormatError(f"<{node.tag} type={kind!r}> holds elements.")
    if kind == "string":
        return _decoded(text) if node.get("encoding") == "base64" else text
    if kind == "null" and not text:
        return None
    if kind == "boolean" and text in ("true", "false"):
        return text == "true"
    if kind == "number":
        try:
            number = json.loads(text, parse_constant=_no_constant)
        except ValueError:
            number = None
        if isinstance(number, int | float) and not isinstance(number, bool):
            return number
    raise FormatError(f"<{node.tag} type={kind!r}> holds {text[:40]!r}.")


def _xml_key(child: Any) -> str:
    key = child.get("key")
    if key is None:
        return child.tag
    return _decoded(key) if child.get("key-encoding") == "base64" else key


def _xml_item(child: Any) -> Any:
    if child.tag != "item":
        raise FormatError(f"An array holds <{child.tag}> instead of <item>.")
    return child


def _decoded(text: str) -> str:
    try:
        return base64.b64decode(text, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise FormatError(f"Not base64 of UTF-8 text: {text[:40]!r}.") from None


def _no_constant(name: str) -> None:
    raise ValueError(name)


# --- Form fields ----------------------------------------------------------------------------------


def to_form(*, event_type: str, timestamp: str, data: dict[str, Any]) -> bytes:
    return _form_fields({"type": event_type, "timestamp": timestamp, "data": data})


def _form_fields(members: dict[str, Any]) -> bytes:
    """One field per leaf, each member's name first."""
    fields: list[str] = []
    pending = [(quote_plus(key), member) for key, member in reversed(members.items())]
    while pending:
        name, value = pending.pop()
        children: Iterable[tuple[str, Any]]
        if isinstance(value, dict) and value:
            children = value.items()
        elif isinstance(value, list) and value:
            children = ((str(index), member) for index, member in enumerate(value))
        else:
            fields.append(f"{name}={quote_plus(_form_text(value))}")
            continue
        pending.extend(reversed([(f"{name}[{quote_plus(key)}]", item) for key, item in children]))
    return "&".join(fields).encode()


def _form_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, dict | list):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    raise FormatError(f"{type(value).__name__} is not a JSON value.")


_FORM_NAME = re.compile(r"([^\[\]]*)((?:\[[^\[\]]*\])*)\Z")
_FORM_KEY = re.compile(r"\[([^\[\]]*)\]")


def parse_form(body: bytes | str) -> dict[str, Any]:
    """A form body read back: `{"type", "timestamp", "data"}`, `data` as nested dicts and lists.

    Leaves are text (`"42"`, `"true"`; null and empty containers `""`). An object inside the data
    whose keys are exactly 0, 1, … reads back as an array. Raises FormatError for a body that is
    not form-encoded UTF-8 or does not follow the mapping.
    """
    try:
        text = body.decode() if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        raise FormatError("The body is not UTF-8.") from None
    fields: dict[str, Any] = {}
    containers: list[tuple[dict[str, Any], str, dict[str, Any]]] = []
    for field in text.split("&") if text else []:
        name, _, value = field.partition("=")
        _form_put(fields, _form_path(name), _form_unquote(value), containers)
    # Innermost first, so that a parent sees its children already turned into lists.
    for parent, key, container in reversed(containers):
        indexes = [str(index) for index in range(len(container))]
        if parent is not fields and set(container) == set(indexes):
            parent[key] = [container[index] for index in indexes]
    data = fields.get("data") or {}  # an empty data object is sent as `data=`
    if set(fields) - {"type", "timestamp", "data"} or not isinstance(data, dict):
        raise FormatError("Expected the fields type, timestamp and data alone.")
    if not isinstance(fields.get("type"), str) or not isinstance(fields.get("timestamp"), str):
        raise FormatError("Expected the fields type and timestamp, each once.")
    return {"type": fields["type"], "timestamp": fields["timestamp"], "data": data}


def _form_path(name: str) -> list[str]:
    match = _FORM_NAME.match(name)
    if match is None or not match.group(1):
        raise FormatError(f"Not a bracketed field name: {name[:80]!r}.")
    keys = _FORM_KEY.findall(match.group(2))
    return [_form_unquote(match.group(1)), *(_form_unquote(key) for key in keys)]


def _form_unquote(text: str) -> str:
    try:
        return unquote_plus(text, errors="strict")
    except UnicodeDecodeError:
        raise FormatError(f"Not UTF-8 once percent-decoded: {text[:80]!r}.") from None


def _form_put(
    fields: dict[str, Any],
    path: list[str],
    value: str,
    containers: list[tuple[dict[str, Any], str, dict[str, Any]]],
) -> None:
    node = fields
    for key in path[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
            containers.append((node, key, child))
        elif not isinstance(child, dict):
            raise FormatError(f"The field {'/'.join(path)} is under a value.")
        node = child
    if path[-1] in node:
        raise FormatError(f"The field {'/'.join(path)} is given twice.")
    node[path[-1]] = value


_WRITERS: dict[str, tuple[Callable[..., bytes], str]] = {
    JSON: (to_json, JSON_CONTENT_TYPE),
    XML: (to_xml, XML_CONTENT_TYPE),
    FORM: (to_form, FORM_CONTENT_TYPE),
}
