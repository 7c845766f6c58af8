"""Each endpoint gets its payload format, signed over the exact bytes it receives."""

from __future__ import annotations

import json
import math

import pytest
from django.utils.html import escape
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from deliveries.batch import deliver_due_batch, deliver_now
from deliveries.models import Delivery
from deliveries.services import deliveries_replay
from inbox.models import Inbox, InboxRequest
from subscriptions.models import Endpoint
from subscriptions.services import api_key_create
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event
from webhooks.formats import parse_form, parse_xml
from webhooks.models import Event
from webhooks.services import event_send_test
from webhooks.signing import verify
from webhooks.wire import iso_timestamp

pytestmark = pytest.mark.django_db(transaction=True)

PAYLOAD = {
    "customer": {"id": 42, "name": "Zoë & Co"},
    "items": [{"sku": "A1", "qty": 2}, {"sku": "B 2", "price": 9.5}],
    "paid": True,
    "paid_text": "true",
    "note": None,
    "tags": [],
    "line": "a\r\nb",
}
# The same payload read back from form fields: text leaves, null and empty containers "".
PAYLOAD_AS_FORM = {
    "customer": {"id": "42", "name": "Zoë & Co"},
    "items": [{"sku": "A1", "qty": "2"}, {"sku": "B 2", "price": "9.5"}],
    "paid": "true",
    "paid_text": "true",
    "note": "",
    "tags": "",
    "line": "a\r\nb",
}
CONTENT_TYPES = {
    "json": "application/json",
    "xml": "application/xml; charset=utf-8",
    "form": "application/x-www-form-urlencoded",
}
READ_BACK = {"json": json.loads, "xml": parse_xml, "form": parse_form}
EXPECTED_DATA = {"json": PAYLOAD, "xml": PAYLOAD, "form": PAYLOAD_AS_FORM}


@pytest.fixture
def tenant():
    EventTypeFactory(name="order.paid")
    return TenantFactory()


def assert_received(request, endpoint: Endpoint, event: Event) -> None:
    """The request carries the endpoint's format, verifies, and reads back to the event's data."""
    payload_format = endpoint.payload_format
    assert request.headers["content-type"] == CONTENT_TYPES[payload_format]
    verify(endpoint.secret, request.headers, request.body)
    assert READ_BACK[payload_format](request.body) == {
        "type": event.event_type.name,
        "timestamp": iso_timestamp(event),
        "data": EXPECTED_DATA[payload_format],
    }


@pytest.mark.parametrize("payload_format", ["json", "xml", "form"])
def test_delivery_sends_the_endpoints_format_signed_over_the_bytes_sent(
    tenant, receiver, payload_format
):
    endpoint = EndpointFactory(
        tenant=tenant, url=receiver.url("/hook"), payload_format=payload_format
    )
    event = send_event(tenant, "order.paid", PAYLOAD)

    assert deliver_due_batch(limit=10) == 1

    [request] = receiver.requests("/hook")
    assert_received(request, endpoint, event)
    attempt = Delivery.objects.get(event=event).attempts.get()
    assert attempt.request_headers["Content-Type"] == CONTENT_TYPES[payload_format]


def test_json_body_is_unchanged_by_payload_formats(tenant, receiver):
    EndpointFactory(tenant=tenant, url=receiver.url("/hook"))
    event = send_event(tenant, "order.paid", {"order_id": "ord_1", "amount": 4200})

    deliver_due_batch(limit=10)

    [request] = receiver.requests("/hook")
    body = '{"type":"order.paid","timestamp":"TS","data":{"order_id":"ord_1","amount":4200}}'
    assert request.body == body.replace("TS", iso_timestamp(event)).encode()


def test_one_event_reaches_endpoints_of_every_format_in_one_batch(tenant, receiver):
    endpoints = {
        payload_format: EndpointFactory(
            tenant=tenant, url=receiver.url(f"/{payload_format}"), payload_format=payload_format
        )
        for payload_format in ("xml", "json", "form")
    }
    event = send_event(tenant, "order.paid", PAYLOAD)

    assert deliver_due_batch(limit=10) == 3

    for payload_format, endpoint in endpoints.items():
        [request] = receiver.requests(f"/{payload_format}")
        assert_received(request, endpoint, event)


def test_a_changed_format_applies_to_the_next_attempt_and_replays_keep_the_webhook_id(
    tenant, receiver
):
    endpoint = EndpointFactory(tenant=tenant, url=receiver.url("/hook"), payload_format="xml")
    event = send_event(tenant, "order.paid", PAYLOAD)
    deliver_due_batch(limit=10)
    Endpoint.objects.filter(id=endpoint.id).update(payload_format="form")
    endpoint.refresh_from_db()

    deliveries_replay(deliveries=Delivery.objects.filter(event=event))
    deliver_due_batch(limit=10)

    first, replayed = receiver.requests("/hook")
    assert first.headers["content-type"] == CONTENT_TYPES["xml"]
    assert_received(replayed, endpoint, event)
    assert first.headers["webhook-id"] == replayed.headers["webhook-id"] == event.public_id


def test_test_event_is_sent_in_the_endpoints_format(tenant, receiver):
    endpoint = EndpointFactory(tenant=tenant, url=receiver.url("/hook"), payload_format="xml")

    attempt = deliver_now(event_send_test(endpoint=endpoint).id)

    assert attempt is not None
    assert attempt.succeeded
    [request] = receiver.requests("/hook")
    verify(endpoint.secret, request.headers, request.body)
    assert parse_xml(request.body)["data"] == {
        "message": "A test message from Hookline.",
        "endpoint_id": endpoint.id,
    }


@pytest.mark.parametrize(
    ("payload_format", "note", "shown"),
    [
        ("xml", "XML, indented", '<id type="number">42</id>'),
        ("form", "form fields, decoded, one per line", "data[customer][id] = 42"),
        ("json", "JSON, pretty-printed", '"id": 42'),
    ],
)
def test_inbox_shows_each_format_readably_with_a_valid_signature(
    tenant, receiver, admin_client, payload_format, note, shown
):
    inbox = Inbox.objects.create(tenant=tenant)
    path = f"/inbox/{inbox.token}/"
    EndpointFactory(tenant=tenant, url=receiver.url(path), payload_format=payload_format)
    send_event(tenant, "order.paid", PAYLOAD)
    deliver_due_batch(limit=10)
    [sent] = receiver.requests(path)

    # What the worker sent, byte for byte, handed on to the inbox.
    forwarded = {
        f"HTTP_{name.upper().replace('-', '_')}": value
        for name, value in sent.headers.items()
        if name.startswith("webhook-")
    }
    admin_client.post(path, sent.body, content_type=sent.headers["content-type"], **forwarded)

    assert InboxRequest.objects.get(inbox=inbox).signature_valid is True
    page = admin_client.get(f"/dashboard/inbox/?tenant={tenant.slug}&inbox={inbox.id}")
    html = page.content.decode()
    assert page.status_code == 200
    assert f"({note})" in html
    assert escape(shown) in html
    assert ">order.paid</span>" in html


def test_delivery_page_of_an_xml_delivery_shows_its_content_type(tenant, receiver, admin_client):
    EndpointFactory(tenant=tenant, url=receiver.url("/hook"), payload_format="xml")
    event = send_event(tenant, "order.paid", PAYLOAD)
    deliver_due_batch(limit=10)
    delivery = Delivery.objects.get(event=event)

    page = admin_client.get(f"/dashboard/deliveries/{delivery.id}/")

    assert page.status_code == 200
    assert "application/xml; charset=utf-8" in page.content.decode()


# --- JSON is byte-exact ---------------------------------------------------------------------------

_SPACE = st.sampled_from(["", " ", "\n", "\t", "\r\n  "])
_NUMBER = st.from_regex(r"\A-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,3})?\Z").filter(
    lambda text: math.isfinite(float(text))
)  # 1e999 is refused: no double holds it
# NUL and unpaired surrogates are refused; every other character may appear, escaped or not.
_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=6)


@st.composite
def _string(draw: st.DrawFn, value: str | None = None) -> tuple[str, str]:
    text = json.dumps(draw(_TEXT) if value is None else value, ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()):
        text = text.replace("/", "\\/")  # an escape json.dumps never writes
    return text, text


def _literal(text: str) -> tuple[str, str]:
    return text, text


@st.composite
def _joined(draw: st.DrawFn, parts: list[tuple[str, str]]) -> tuple[str, str]:
    """`parts` with whitespace drawn around each, and without."""
    spaced = "".join(draw(_SPACE) + part for part, _ in parts) + draw(_SPACE)
    return spaced, "".join(compact for _, compact in parts)


@st.composite
def _array(draw: st.DrawFn, values: st.SearchStrategy) -> tuple[str, str]:
    parts = [_literal("[")]
    for index, value in enumerate(draw(st.lists(values, max_size=4))):
        if index:
            parts.append(_literal(","))
        parts.append(value)
    return draw(_joined([*parts, _literal("]")]))


@st.composite
def _object(draw: st.DrawFn, values: st.SearchStrategy) -> tuple[str, str]:
    parts = [_literal("{")]
    for index, key in enumerate(draw(st.lists(_TEXT, max_size=4, unique=True))):
        if index:
            parts.append(_literal(","))
        parts += [draw(_string(key)), _literal(":"), draw(values)]
    return draw(_joined([*parts, _literal("}")]))


_VALUES = st.recursive(
    _NUMBER.map(_literal) | _string() | st.sampled_from(["true", "false", "null"]).map(_literal),
    lambda children: _array(children) | _object(children),
    max_leaves=12,
)


def _emit_raw(tenant, payload_text: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=tenant, name='k')[1]}")
    raw = '{"event_type": "order.paid", "payload": ' + payload_text + "}"
    return client.post("/api/v1/events/", raw.encode(), content_type="application/json")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=_object(_VALUES))
def test_any_payload_the_api_accepts_arrives_as_written_less_the_whitespace(
    tenant, receiver, payload
):
    written, compact = payload
    endpoint = Endpoint.objects.filter(tenant=tenant).first() or EndpointFactory(
        tenant=tenant, url=receiver.url("/exact")
    )

    response = _emit_raw(tenant, written)

    assert response.status_code == 202, response.content
    assert deliver_due_batch(limit=10) == 1
    [request] = [r for r in receiver.requests() if r.headers["webhook-id"] == response.json()["id"]]
    verify(endpoint.secret, request.headers, request.body)
    assert request.body.endswith(b',"data":' + compact.encode() + b"}")
    assert json.loads(request.body)["data"] == json.loads(written)


def test_delivery_page_shows_the_payload_as_the_host_wrote_it(tenant, receiver, admin_client):
    EndpointFactory(tenant=tenant, url=receiver.url("/hook"))
    emitted = _emit_raw(tenant, '{"b": 1, "a": [1e308, 1.10]}')
    delivery = Delivery.objects.get(event__public_id=emitted.json()["id"])

    page = admin_client.get(f"/dashboard/deliveries/{delivery.id}/")

    expected = '{\n  "b": 1,\n  "a": [\n    1e308,\n    1.10\n  ]\n}'
    assert f"<pre>{escape(expected)}</pre>" in page.content.decode()
