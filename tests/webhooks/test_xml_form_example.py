"""The XML and form receiver of docs/receiving.md, run on real deliveries: Standard Webhooks
libraries verify these bodies only with their JSON parsing turned off."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import standardwebhooks
from django.conf import settings

from deliveries.batch import deliver_due_batch
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event

pytestmark = pytest.mark.django_db(transaction=True)

RECEIVING = Path(settings.BASE_DIR) / "docs" / "receiving.md"
PAYLOAD = {"order_id": "ord_1001", "amount": 42.5, "customer": {"name": "Zoë"}}


def documented_xml_form_reader():
    """`read_webhook` from the page's marked example, compiled from the page's own text."""
    match = re.search(
        r"<!-- xml-form-example -->\n```python\n(.*?)\n```", RECEIVING.read_text(), re.S
    )
    assert match, "docs/receiving.md lost its XML and form receiver example"
    namespace: dict = {}
    exec(compile(match[1], "docs/receiving.md", "exec"), namespace)
    return namespace["read_webhook"]


def received(receiver, payload_format: str):
    tenant = TenantFactory()
    EventTypeFactory(name="order.paid")
    endpoint = EndpointFactory(
        tenant=tenant, url=receiver.url("/hook"), payload_format=payload_format
    )
    send_event(tenant, "order.paid", PAYLOAD)
    assert deliver_due_batch(limit=10) == 1
    [request] = receiver.requests()
    return endpoint, request


@pytest.mark.parametrize("payload_format", ["xml", "form"])
def test_documented_reader_verifies_and_parses_xml_and_form_deliveries(receiver, payload_format):
    endpoint, request = received(receiver, payload_format)

    message = documented_xml_form_reader()(endpoint.secret, request.body, dict(request.headers))

    assert message["type"] == "order.paid"
    assert message["data"]["order_id"] == "ord_1001"
    assert message["data"]["customer"] == {"name": "Zoë"}


@pytest.mark.parametrize("payload_format", ["xml", "form"])
def test_standardwebhooks_with_json_parsing_on_fails_after_verifying(receiver, payload_format):
    """Why the page says to turn it off: the default parses the body as JSON and raises."""
    endpoint, request = received(receiver, payload_format)

    with pytest.raises(json.JSONDecodeError):
        standardwebhooks.Webhook(endpoint.secret).verify(request.body, dict(request.headers))


def test_documented_reader_refuses_a_tampered_body(receiver):
    endpoint, request = received(receiver, "form")

    with pytest.raises(standardwebhooks.WebhookVerificationError):
        documented_xml_form_reader()(endpoint.secret, request.body + b"&x=1", dict(request.headers))
