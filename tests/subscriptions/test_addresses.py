"""The network policy: which addresses `is_allowed` refuses, and what the allowlist opens."""

from __future__ import annotations

import ipaddress

import pytest
from django.test import override_settings

from subscriptions.addresses import (
    BLOCKED_NETWORKS,
    BlockedAddressError,
    is_allowed,
    resolve_allowed,
)

# At least one sample per blocked network; the named ones are the classic SSRF targets.
BLOCKED_SAMPLES = {
    "0.0.0.0/8": ["0.0.0.0", "0.1.2.3"],
    "10.0.0.0/8": ["10.0.0.1", "10.255.255.254"],
    "100.64.0.0/10": ["100.64.0.1", "100.127.255.254"],
    "127.0.0.0/8": ["127.0.0.1", "127.255.255.254"],
    "169.254.0.0/16": ["169.254.169.254", "169.254.0.1"],
    "172.16.0.0/12": ["172.16.0.1", "172.31.255.254"],
    "192.0.0.0/24": ["192.0.0.170"],
    "192.0.2.0/24": ["192.0.2.1"],
    "192.168.0.0/16": ["192.168.0.1", "192.168.255.254"],
    "198.18.0.0/15": ["198.18.0.1", "198.19.255.254"],
    "198.51.100.0/24": ["198.51.100.7"],
    "203.0.113.0/24": ["203.0.113.9"],
    "224.0.0.0/4": ["224.0.0.1", "239.255.255.250"],
    "240.0.0.0/4": ["240.0.0.1", "255.255.255.255"],
    "::/128": ["::"],
    "::1/128": ["::1"],
    "::ffff:0:0/96": ["::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:8.8.8.8"],
    "64:ff9b::/96": ["64:ff9b::1.2.3.4", "64:ff9b::a9fe:a9fe"],
    "64:ff9b:1::/48": ["64:ff9b:1::1"],
    "100::/64": ["100::1"],
    "2001::/32": ["2001:0:4136:e378::1"],
    "2001:db8::/32": ["2001:db8::1"],
    "2002::/16": ["2002:7f00:1::1", "2002:a9fe:a9fe::1"],
    "fc00::/7": ["fd00:ec2::254", "fc00::1"],
    "fe80::/10": ["fe80::1"],
    "ff00::/8": ["ff02::1"],
}

PUBLIC_ADDRESSES = [
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    # Just outside the blocked ranges around them.
    "9.255.255.255",
    "11.0.0.0",
    "100.63.255.255",
    "100.128.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "198.17.255.255",
    "198.20.0.0",
    "223.255.255.255",
]

no_allowlist = override_settings(WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST=())


def test_every_blocked_network_has_samples_in_this_table():
    assert {str(network) for network in BLOCKED_NETWORKS} == set(BLOCKED_SAMPLES)


@pytest.mark.parametrize(
    ("network", "address"),
    [(network, address) for network, samples in BLOCKED_SAMPLES.items() for address in samples],
)
@no_allowlist
def test_address_in_blocked_network_is_refused_without_allowlist(network, address):
    ip = ipaddress.ip_address(address)
    assert ip in ipaddress.ip_network(network)
    assert not is_allowed(ip)


@pytest.mark.parametrize("address", PUBLIC_ADDRESSES)
@no_allowlist
def test_public_address_is_allowed(address):
    assert is_allowed(ipaddress.ip_address(address))


@override_settings(WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST=(ipaddress.ip_network("10.1.0.0/16"),))
@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("10.1.0.0", True),
        ("10.1.2.3", True),
        ("10.1.255.255", True),
        ("10.0.255.255", False),
        ("10.2.0.0", False),
        ("127.0.0.1", False),
        ("169.254.169.254", False),
        ("fd00::1", False),
        ("8.8.8.8", True),
    ],
)
def test_allowlisted_range_opens_exactly_that_range(address, allowed):
    assert is_allowed(ipaddress.ip_address(address)) is allowed


@override_settings(WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST=(ipaddress.ip_network("fd00:ec2::/32"),))
def test_allowlisted_ipv6_range_opens_only_that_range():
    assert is_allowed(ipaddress.ip_address("fd00:ec2::254"))
    assert not is_allowed(ipaddress.ip_address("fd00:ec3::254"))
    assert not is_allowed(ipaddress.ip_address("::1"))


def test_loopback_is_allowed_under_the_test_settings_allowlist():
    assert is_allowed(ipaddress.ip_address("127.0.0.1"))
    assert is_allowed(ipaddress.ip_address("127.200.0.1"))
    assert not is_allowed(ipaddress.ip_address("10.0.0.1"))


@no_allowlist
def test_resolve_allowed_refuses_a_host_resolving_to_loopback_and_names_the_setting():
    with pytest.raises(BlockedAddressError, match=r"localhost resolves to 127\.0\.0\.1") as info:
        resolve_allowed("localhost", 80)
    assert "WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST" in str(info.value)


def test_resolve_allowed_returns_the_addresses_when_allowed():
    assert resolve_allowed("127.0.0.1", 80) == [ipaddress.ip_address("127.0.0.1")]


def test_resolve_allowed_refuses_a_name_that_does_not_resolve():
    with pytest.raises(BlockedAddressError, match="does not resolve"):
        resolve_allowed("no-such-host.invalid", 443)
