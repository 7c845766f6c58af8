"""The client's address as every throttle counts it (config.throttle)."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from config.throttle import client_address, client_group


def request_from(remote_addr: str = "192.0.2.10", **headers: str):
    return RequestFactory().get("/", REMOTE_ADDR=remote_addr, **headers)


def test_without_a_trusted_header_the_address_is_remote_addr_whatever_the_headers_say(settings):
    settings.WEBHOOKS_TRUSTED_PROXY_HEADER = ""

    request = request_from(HTTP_X_FORWARDED_FOR="203.0.113.7", HTTP_X_REAL_IP="203.0.113.8")

    assert client_address(request) == "192.0.2.10"


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("198.51.100.1, 10.0.0.2,203.0.113.7", "203.0.113.7"),  # the right-most entry counts
        ("203.0.113.7:51234", "203.0.113.7"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:DB8:0::1", "2001:db8::1"),
        ("198.51.100.1, not-an-address", "192.0.2.10"),  # garbage: REMOTE_ADDR
        ("", "192.0.2.10"),
    ],
)
def test_behind_a_proxy_the_right_most_address_of_its_header_counts(settings, forwarded, expected):
    settings.WEBHOOKS_TRUSTED_PROXY_HEADER = "X-Forwarded-For"

    assert client_address(request_from(HTTP_X_FORWARDED_FOR=forwarded)) == expected


def test_a_missing_trusted_header_falls_back_to_remote_addr(settings):
    settings.WEBHOOKS_TRUSTED_PROXY_HEADER = "X-Real-IP"

    assert client_address(request_from()) == "192.0.2.10"
    assert client_address(request_from(HTTP_X_REAL_IP="203.0.113.9")) == "203.0.113.9"


@pytest.mark.parametrize(
    ("address", "group"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
    ],
)
def test_ipv6_clients_are_counted_by_their_64_and_ipv4_by_address(settings, address, group):
    settings.WEBHOOKS_TRUSTED_PROXY_HEADER = ""

    assert client_group(request_from(address)) == group
