"""Client address allowlists (pure): parse CIDR lists from settings, test a peer's address."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from shipmate.errors import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str, setting: str) -> tuple[Network, ...]:
    """Comma-separated CIDRs (``"127.0.0.0/8,::1/128"``) as networks; a bad entry is a
    ConfigError naming ``setting``."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            out.append(ipaddress.ip_network(part, strict=False))
        except ValueError as exc:
            raise ConfigError(f"invalid network {part!r} in {setting}: {exc}",
                              hint="give comma-separated CIDRs, e.g. 127.0.0.0/8,::1/128") from None
    return tuple(out)


def client_allowed(address: str | None, networks: Iterable[Network]) -> bool:
    """True when ``address`` (a peer's IP; IPv4-mapped IPv6 is unwrapped, a zone ID ignored)
    is inside one of ``networks``."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)
