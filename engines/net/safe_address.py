"""Which IP addresses outbound fetches may reach, and how odd spellings of them read.

Used by ``engines.net.safe_url``; kept apart so the rules can be read (and tested) on
their own. Everything here is pure: no DNS, no sockets.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Not public whatever ``is_global`` says: cloud metadata services (AWS, GCP and Azure
# at 169.254.169.254, ECS task metadata, Alibaba, Oracle, AWS over IPv6) and the IETF
# protocol-assignment block they partly live in.
NEVER_PUBLIC: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(net) for net in (
    "169.254.169.254/32", "169.254.170.2/32", "100.100.100.200/32", "192.0.0.0/24",
    "fd00:ec2::254/128", "0.0.0.0/8", "100.64.0.0/10",
))
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def canonical(address: IPAddress) -> IPAddress:
    """The address a connection really reaches: IPv4-mapped IPv6 (``::ffff:127.0.0.1``) is IPv4."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_public(address: IPAddress) -> bool:
    """True for globally routable unicast addresses; false for loopback, private, link-local,
    multicast, reserved, unspecified, shared, metadata and IPv6 forms that embed such an IPv4."""
    address = canonical(address)
    if any(address in net for net in NEVER_PUBLIC):
        return False
    if (not address.is_global or address.is_multicast or address.is_reserved or address.is_private
            or address.is_loopback or address.is_link_local or address.is_unspecified):
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address in NAT64_LOCAL or address in IPV4_COMPATIBLE or address.teredo is not None:
            return False
        embedded = address.sixtofour
        if embedded is None and address in NAT64_WELL_KNOWN:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and not is_public(embedded):
            return False
    return True


def _ipv4_number(part: str) -> int | None:
    if part[:2] in ("0x", "0X"):
        digits, base = part[2:] or "0", 16
    elif len(part) > 1 and part.startswith("0"):
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    if not digits.isascii() or not digits.isalnum():
        return None
    try:
        return int(digits, base)
    except ValueError:
        return None


def ipv4_numeric(host: str) -> ipaddress.IPv4Address | None:
    """Read the spellings resolvers accept for IPv4 (``127.1``, ``0x7f000001``, ``2130706433``,
    ``0177.0.0.1``) the way they do; None when ``host`` is not such a spelling."""
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not 1 <= len(parts) <= 4 or any(not part for part in parts):
        return None
    numbers = [_ipv4_number(part) for part in parts]
    if any(n is None for n in numbers):
        return None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def ip_literal(host: str) -> IPAddress | None:
    """The address ``host`` spells directly (brackets and an IPv6 zone allowed), or None for a name."""
    text = host.strip("[]").split("%")[0]
    try:
        return canonical(ipaddress.ip_address(text))
    except ValueError:
        return ipv4_numeric(text)


def parse_allowlist(text: str | None) -> tuple[set[str], list[IPNetwork]]:
    """``FETCH_ALLOWLIST``: comma-separated host names, IPs and CIDRs."""
    hosts, networks = set(), []
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            hosts.add(item.lower().rstrip("."))
    return hosts, networks


@dataclass(frozen=True)
class Allowlist:
    hosts: set[str] = field(default_factory=set)
    networks: list[IPNetwork] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str | None) -> Allowlist:
        return cls(*parse_allowlist(text))

    def admits_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def admits(self, address: IPAddress) -> bool:
        """True when ``address`` may be reached: public, or inside an allowlisted network."""
        address = canonical(address)
        return any(address in net for net in self.networks) or is_public(address)
