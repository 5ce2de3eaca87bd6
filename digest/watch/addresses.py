"""Which IP addresses the fetcher may connect to: globally routable unicast ones only.

IPv6 forms that carry an IPv4 address (mapped, NAT64, 6to4, Teredo) are judged by the
IPv4 address inside them, so `64:ff9b::7f00:1` is loopback. The ranges are written out
from the IANA special-purpose registries rather than taken from `ipaddress.is_global`,
whose answer differs between Python patch releases (3.11.7 calls multicast global).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

IPAddress = IPv4Address | IPv6Address

_IPV4_NOT_GLOBAL: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(net), why)
    for net, why in (
        ("0.0.0.0/8", "this network"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared address space"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),  # includes the broadcast address
    )
)

_IPV6_NOT_GLOBAL: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(net), why)
    for net, why in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/96", "IPv4-compatible (deprecated)"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        ("2001::/23", "IETF protocol assignments"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("fc00::/7", "unique local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated)"),
        ("ff00::/8", "multicast"),
    )
)
_IPV6_GLOBAL_UNICAST = IPv6Network("2000::/3")
_NAT64 = IPv6Network("64:ff9b::/96")
_TEREDO = IPv6Network("2001::/32")


def embedded_ipv4(address: IPv6Address) -> tuple[str, list[IPv4Address]] | None:
    """The IPv4 addresses an IPv6 address stands for, with the name of its form."""
    if address.ipv4_mapped is not None:
        return "IPv4-mapped", [address.ipv4_mapped]
    if address in _NAT64:
        return "NAT64", [IPv4Address(int(address) & 0xFFFFFFFF)]
    if address.sixtofour is not None:
        return "6to4", [address.sixtofour]
    if address in _TEREDO and address.teredo is not None:
        return "Teredo", list(address.teredo)
    return None


def refusal(address: IPAddress) -> str | None:
    """Why `address` must not be connected to, or None when it is globally routable."""
    if isinstance(address, IPv4Address):
        return _ipv4_refusal(address)
    embedded = embedded_ipv4(address)
    if embedded is not None:
        form, inner = embedded
        for ipv4 in inner:
            why = _ipv4_refusal(ipv4)
            if why:
                return f"{form} form of {ipv4}, {why}"
        return None
    for network, why in _IPV6_NOT_GLOBAL:
        if address in network:
            return why
    if address not in _IPV6_GLOBAL_UNICAST:
        return "not global unicast"
    return None


def _ipv4_refusal(address: IPv4Address) -> str | None:
    for network, why in _IPV4_NOT_GLOBAL:
        if address in network:
            return why
    return None if address.is_global else "not globally routable"


def parse_address(text: str) -> IPAddress:
    """An address as the resolver gives it; an IPv6 zone (`fe80::1%eth0`) is dropped."""
    return ip_address(text.split("%", 1)[0])
