"""Which network addresses Hookline may deliver to: public ones, plus the operator's allowlist.

Python's `ipaddress` flags are not enough on their own (`is_global` is true for NAT64 and CGNAT is
neither private nor global), so the blocked ranges are listed explicitly: every block of IANA's
IPv4 and IPv6 special-purpose registries but none (tests/subscriptions/test_addresses.py says
why, block by block). On top of that an IPv6 address must be global unicast (2000::/3), the only
space IANA hands out to networks on the internet, so a block the list misses cannot slip through.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

BLOCKED_NETWORKS = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",  # CGNAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments, PCP and TURN anycast among them
        "192.0.2.0/24",
        "192.31.196.0/24",  # AS112, anycast: may be served inside the operator's network
        "192.52.193.0/24",  # AMT relays, anycast
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        "192.168.0.0/16",
        "192.175.48.0/24",  # AS112 direct delegation, anycast
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",  # reserved, includes 255.255.255.255
        "::/128",
        "::1/128",
        "::/96",  # IPv4-compatible (deprecated): ::127.0.0.1 embeds an IPv4 address
        "::ffff:0:0/96",  # IPv4-mapped
        "64:ff9b::/96",  # NAT64
        "64:ff9b:1::/48",
        "100::/64",  # discard
        "100:0:0:1::/64",  # dummy prefix
        "2001::/23",  # IETF protocol assignments: anycast services, benchmarking, ORCHID, DRIP
        "2001::/32",  # Teredo
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4
        "2620:4f:8000::/48",  # AS112 direct delegation, anycast
        "3fff::/20",  # documentation
        "5f00::/16",  # SRv6 segment identifiers
        "fc00::/7",  # unique local, includes fd00:ec2::254
        "fe80::/10",
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",
    )
)
GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")


class BlockedAddressError(ValueError):
    """A target resolves to an address Hookline refuses to deliver to."""


def is_allowed(address: IPAddress) -> bool:
    if any(address in network for network in settings.WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST):
        return True
    if address.version == 6 and address not in GLOBAL_UNICAST_V6:
        return False
    return not any(address in network for network in BLOCKED_NETWORKS)


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, with the resolver the connection itself uses."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise BlockedAddressError(f"{host} does not resolve ({error})") from None
    return _unique(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)


def resolve_allowed(host: str, port: int) -> list[IPAddress]:
    """Resolve `host` and insist that every address is allowed; raises BlockedAddressError."""
    addresses = resolve(host, port)
    refused = [address for address in addresses if not is_allowed(address)]
    if refused:
        raise BlockedAddressError(
            f"{host} resolves to {refused[0]}, a private or reserved address; "
            "add its range to WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST to allow it"
        )
    return addresses


def _unique(addresses: Iterable[IPAddress]) -> list[IPAddress]:
    return list(dict.fromkeys(addresses))
