"""DNS rebinding: the address is checked when the socket opens, and the socket goes to it.

Real DNS cannot be steered here, so the resolver's answers are scripted; the connection, the
receiver and the request are real.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from deliveries import transport
from subscriptions.validators import validate_endpoint_url

PUBLIC = "93.184.216.34"


@pytest.fixture
def scripted_dns(monkeypatch):
    """Answers for `*.rebind.test`, in order, the last repeating; other names resolve as usual."""
    answers: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):  # noqa: ANN001, ANN202
        if isinstance(host, str) and host.endswith(".rebind.test"):
            address = answers.pop(0) if len(answers) > 1 else answers[0]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    transport.forget_connections()  # no pooled connection from an earlier test
    return answers


@override_settings(WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST=(ipaddress.ip_network("127.0.0.2/32"),))
def test_the_socket_goes_to_the_address_that_was_checked(scripted_dns, receiver):
    """The name answers an allowed address, then (rebinding) the receiver's forbidden one.

    Resolving once for the check and again for the connection would reach the receiver on
    127.0.0.1; connecting to the checked 127.0.0.2, where nothing listens, reaches nothing.
    """
    port = receiver.url().split(":")[2].split("/")[0]
    url = f"http://app.rebind.test:{port}/hook"
    scripted_dns.extend(["127.0.0.2", "127.0.0.2", "127.0.0.1"])

    validate_endpoint_url(url)  # the endpoint was saved while the name looked allowed
    result = transport.post(url, b"{}", {"webhook-id": "msg_rebind"})

    assert result.error_kind == "connection"
    assert receiver.requests() == []


@override_settings(WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST=())
def test_a_name_that_resolves_private_is_refused_when_saved_and_when_sent(scripted_dns, receiver):
    port = receiver.url().split(":")[2].split("/")[0]
    url = f"http://db.rebind.test:{port}/hook"
    scripted_dns.append("127.0.0.1")

    with pytest.raises(ValidationError, match="private or reserved"):
        validate_endpoint_url(url)
    assert transport.post(url, b"{}", {}).error_kind == "blocked"
    assert receiver.requests() == []


def test_a_name_whose_address_is_allowed_is_delivered_to_that_address(scripted_dns, receiver):
    port = receiver.url().split(":")[2].split("/")[0]
    scripted_dns.append("127.0.0.1")  # allowed by the test settings' allowlist

    result = transport.post(f"http://ok.rebind.test:{port}/hook", b"{}", {"webhook-id": "msg_ok"})

    assert result.status == 200
    [request] = receiver.requests()
    assert request.headers["host"] == f"ok.rebind.test:{port}"
