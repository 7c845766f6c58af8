"""The network policy: which addresses `is_allowed` refuses, and what the allowlist opens."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from deliveries import transport
from subscriptions.addresses import (
    BLOCKED_NETWORKS,
    BlockedAddressError,
    IPAddress,
    is_allowed,
    resolve_allowed,
)
from subscriptions.validators import validate_endpoint_url

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
    "192.31.196.0/24": ["192.31.196.1"],
    "192.52.193.0/24": ["192.52.193.1"],
    "192.88.99.0/24": ["192.88.99.1"],
    "192.175.48.0/24": ["192.175.48.6"],
    "192.168.0.0/16": ["192.168.0.1", "192.168.255.254"],
    "198.18.0.0/15": ["198.18.0.1", "198.19.255.254"],
    "198.51.100.0/24": ["198.51.100.7"],
    "203.0.113.0/24": ["203.0.113.9"],
    "224.0.0.0/4": ["224.0.0.1", "239.255.255.250"],
    "240.0.0.0/4": ["240.0.0.1", "255.255.255.255"],
    "::/128": ["::"],
    "::1/128": ["::1"],
    "::/96": ["::127.0.0.1", "::a9fe:a9fe", "::8.8.8.8", "::2"],
    "::ffff:0:0/96": ["::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:8.8.8.8"],
    "64:ff9b::/96": ["64:ff9b::1.2.3.4", "64:ff9b::a9fe:a9fe"],
    "64:ff9b:1::/48": ["64:ff9b:1::1"],
    "100::/64": ["100::1"],
    "100:0:0:1::/64": ["100:0:0:1::1"],
    "2001::/23": ["2001:1::1", "2001:1ff::1"],
    "2001::/32": ["2001:0:4136:e378::1"],
    "2001:db8::/32": ["2001:db8::1"],
    "2002::/16": ["2002:7f00:1::1", "2002:a9fe:a9fe::1"],
    "2620:4f:8000::/48": ["2620:4f:8000::42"],
    "3fff::/20": ["3fff::1"],
    "5f00::/16": ["5f00::1"],
    "fc00::/7": ["fd00:ec2::254", "fc00::1"],
    "fe80::/10": ["fe80::1"],
    "fec0::/10": ["fec0::1"],
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


# --- IANA's special-purpose registries, block by block ------------------------------------------
#
# One row per entry of the IANA IPv4 and IPv6 Special-Purpose Address Registries (as updated in
# 2025), with the registry's "Globally Reachable" column and Hookline's verdict. A block is allowed
# only if it is globally reachable AND safe to POST to; no entry is both: the globally reachable
# ones are anycast services answered by the nearest server (which may sit in the operator's own
# network), identifiers that are no locators, or translations to an embedded IPv4 address.


@dataclass(frozen=True)
class Block:
    cidr: str
    name: str
    globally_reachable: str  # as the registry says: "True", "False" or "N/A"
    allowed: bool
    why: str


IPV6_REGISTRY = [
    Block("::1/128", "Loopback Address", "False", False, "this machine"),
    Block("::/128", "Unspecified Address", "False", False, "connecting to it reaches this machine"),
    Block("::ffff:0:0/96", "IPv4-mapped Address", "False", False,
          "an IPv4 address in IPv6 form: ::ffff:127.0.0.1 is loopback"),
    Block("64:ff9b::/96", "IPv4-IPv6 Translat.", "True", False,
          "NAT64 forwards to the embedded IPv4 address, private ones included"),
    Block("64:ff9b:1::/48", "IPv4-IPv6 Translat. (local use)", "False", False,
          "local NAT64, to an embedded IPv4 address"),
    Block("100::/64", "Discard-Only Address Block", "False", False, "blackholed by design"),
    Block("100:0:0:1::/64", "Dummy IPv6 Prefix", "False", False, "placeholder, never a host"),
    Block("2001::/23", "IETF Protocol Assignments", "False", False,
          "special-purpose blocks, listed one by one below"),
    Block("2001::/32", "TEREDO", "N/A", False,
          "tunnels to an IPv4 address and port embedded in the address"),
    Block("2001:1::1/128", "Port Control Protocol Anycast", "True", False,
          "the nearest PCP server: the operator's own NAT gateway"),
    Block("2001:1::2/128", "TURN Anycast", "True", False,
          "the nearest TURN relay, which may be inside the operator's network"),
    Block("2001:1::3/128", "DNS-SD Service Registration Protocol Anycast", "True", False,
          "the nearest SRP registrar, a local-network service"),
    Block("2001:2::/48", "Benchmarking", "False", False, "lab networks"),
    Block("2001:3::/32", "AMT", "True", False,
          "anycast multicast-tunnel relays: the nearest may be the operator's"),
    Block("2001:4:112::/48", "AS112-v6", "True", False,
          "anycast DNS sinks, also run inside organisations"),
    Block("2001:10::/28", "Deprecated (previously ORCHID)", "False", False, "retired"),
    Block("2001:20::/28", "ORCHIDv2", "True", False,
          "host identities, mapped to real addresses by a local HIP stack"),
    Block("2001:30::/28", "Drone Remote ID Protocol Entity Tags (DETs) Prefix", "True", False,
          "drone identifiers, not host addresses"),
    Block("2001:db8::/32", "Documentation", "False", False, "examples only"),
    Block("2002::/16", "6to4", "N/A", False,
          "tunnels to the embedded IPv4 address: 2002:7f00:1:: is 127.0.0.1"),
    Block("2620:4f:8000::/48", "Direct Delegation AS112 Service", "True", False,
          "anycast DNS sinks, also run inside organisations"),
    Block("3fff::/20", "Documentation", "False", False, "examples only"),
    Block("5f00::/16", "Segment Routing (SRv6) SIDs", "False", False,
          "segment identifiers inside an operator's network"),
    Block("fc00::/7", "Unique-Local", "False", False, "private networks (fd00:ec2::254: metadata)"),
    Block("fe80::/10", "Link-Local Unicast", "False", False, "this link: neighbours and metadata"),
]  # fmt: skip

IPV4_REGISTRY = [
    Block("0.0.0.0/8", '"This network"', "False", False, "0.0.0.0 reaches this machine"),
    Block("0.0.0.0/32", '"This host on this network"', "False", False, "this machine"),
    Block("10.0.0.0/8", "Private-Use", "False", False, "private networks"),
    Block("100.64.0.0/10", "Shared Address Space", "False", False, "carrier-grade NAT"),
    Block("127.0.0.0/8", "Loopback", "False", False, "this machine"),
    Block("169.254.0.0/16", "Link Local", "False", False, "cloud metadata at 169.254.169.254"),
    Block("172.16.0.0/12", "Private-Use", "False", False, "private networks"),
    Block("192.0.0.0/24", "IETF Protocol Assignments", "False", False,
          "special-purpose blocks, listed one by one below"),
    Block("192.0.0.0/29", "IPv4 Service Continuity Prefix", "False", False, "DS-Lite, local"),
    Block("192.0.0.8/32", "IPv4 dummy address", "False", False, "placeholder, never a host"),
    Block("192.0.0.9/32", "Port Control Protocol Anycast", "True", False,
          "the nearest PCP server: the operator's own NAT gateway"),
    Block("192.0.0.10/32", "Traversal Using Relays around NAT Anycast", "True", False,
          "the nearest TURN relay, which may be inside the operator's network"),
    Block("192.0.0.170/32", "NAT64/DNS64 Discovery", "False", False, "local discovery"),
    Block("192.0.0.171/32", "NAT64/DNS64 Discovery", "False", False, "local discovery"),
    Block("192.0.2.0/24", "Documentation (TEST-NET-1)", "False", False, "examples only"),
    Block("192.31.196.0/24", "AS112-v4", "True", False,
          "anycast DNS sinks, also run inside organisations"),
    Block("192.52.193.0/24", "AMT", "True", False,
          "anycast multicast-tunnel relays: the nearest may be the operator's"),
    Block("192.88.99.0/24", "Deprecated (6to4 Relay Anycast)", "N/A", False, "retired anycast"),
    Block("192.88.99.2/32", "6a44-relay anycast address", "False", False, "local relay"),
    Block("192.168.0.0/16", "Private-Use", "False", False, "private networks"),
    Block("192.175.48.0/24", "Direct Delegation AS112 Service", "True", False,
          "anycast DNS sinks, also run inside organisations"),
    Block("198.18.0.0/15", "Benchmarking", "False", False, "lab networks"),
    Block("198.51.100.0/24", "Documentation (TEST-NET-2)", "False", False, "examples only"),
    Block("203.0.113.0/24", "Documentation (TEST-NET-3)", "False", False, "examples only"),
    Block("240.0.0.0/4", "Reserved", "False", False, "never assigned"),
    Block("255.255.255.255/32", "Limited Broadcast", "False", False, "every host on this link"),
]  # fmt: skip

# Not in the special-purpose registries, but no place for a webhook either.
OUTSIDE_THE_REGISTRIES = [
    Block("::/96", "IPv4-compatible (RFC 4291, deprecated)", "-", False,
          "embeds an IPv4 address: ::127.0.0.1"),
    Block("fec0::/10", "Site-local (RFC 3879, deprecated)", "-", False, "private networks"),
    Block("ff00::/8", "Multicast", "-", False, "not unicast"),
    Block("4000::/3", "Unassigned", "-", False, "outside 2000::/3, the global unicast space"),
    Block("8000::/1", "Unassigned and special", "-", False, "outside 2000::/3"),
    Block("224.0.0.0/4", "Multicast", "-", False, "not unicast"),
    Block("2001:200::/23", "Global unicast just past 2001::/23", "-", True, "the internet"),
    Block("2600::/12", "Global unicast (ARIN)", "-", True, "the internet"),
    Block("8.0.0.0/8", "Global unicast", "-", True, "the internet"),
]  # fmt: skip


def samples(cidr: str) -> list[IPAddress]:
    """The first, a middle and the last address of a block."""
    network = ipaddress.ip_network(cidr)
    middle = network.network_address + network.num_addresses // 2
    return list(dict.fromkeys([network.network_address, middle, network.broadcast_address]))


@pytest.mark.parametrize(
    "block",
    [*IPV6_REGISTRY, *IPV4_REGISTRY, *OUTSIDE_THE_REGISTRIES],
    ids=lambda block: block.cidr,
)
@no_allowlist
def test_special_purpose_block_gets_its_verdict(block):
    verdicts = {str(address): is_allowed(address) for address in samples(block.cidr)}
    assert verdicts == dict.fromkeys(verdicts, block.allowed), block.why


def test_only_globally_reachable_blocks_could_ever_be_allowed():
    registry = [*IPV6_REGISTRY, *IPV4_REGISTRY]
    assert not [block.cidr for block in registry if block.allowed]
    assert all(block.why for block in registry)
    assert len({block.cidr for block in registry}) == len(registry) == 51


@no_allowlist
def test_an_ipv4_compatible_ipv6_url_is_refused_when_saved():
    for url in ("https://[::127.0.0.1]/hook", "https://[::a9fe:a9fe]/latest", "https://[::2]/"):
        with pytest.raises(ValidationError, match="private or reserved address"):
            validate_endpoint_url(url)


def test_an_ipv4_compatible_ipv6_url_is_refused_when_sent_even_with_loopback_allowlisted(receiver):
    # The test settings allowlist 127.0.0.0/8: ::127.0.0.1 must not ride on that.
    port = receiver.url().split(":")[2].split("/")[0]
    transport.forget_connections()

    result = transport.post(f"http://[::127.0.0.1]:{port}/hook", b"{}", {"webhook-id": "msg_x"})

    assert result.error_kind == "blocked"
    assert "::127.0.0.1" in result.error_message
    assert receiver.requests() == []
