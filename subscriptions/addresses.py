"""Which network addresses Hookline may deliver to: public ones, plus the operator's allowlist.

Python's `ipaddress` flags are not enough on their own (`is_global` is true for NAT64 and CGNAT is
neither private nor global), so the blocked ranges are listed explicitly.
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
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",  # reserved, includes 255.255.255.255
        "::/128",
        "::1/128",
        "::ffff:0:0/96",  # IPv4-mapped
        "64:ff9b::/96",  # NAT64
        "64:ff9b:1::/48",
        "100::/64",  # discard
        "2001::/32",  # Teredo
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4
        "fc00::/7",  # unique local, includes fd00:ec2::254
        "fe80::/10",
        "ff00::/8",
    )
)


class BlockedAddressError(ValueError):
    """A target resolves to an address Hookline refuses to deliver to."""


def is_allowed(address: IPAddress) -> bool:
    if any(address in network for network in settings.WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST):
        return True
    return not any(address in network for network in BLOCKED_NETWORKS)


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, with the resolver the connection itself uses."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise BlockedAddressError(f"{host} does not resolve ({error})") from None
    return _unique(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos)


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
