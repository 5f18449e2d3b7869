"""The firewall rules that fence the build network: a build reaches the package cache on the
network's gateway and nothing else of the host. Pure: addresses and listings in, iptables
text out.

Why both an internal network and rules: Docker's ``--internal`` bridge has no route beyond
the host (no other machine, no store on a cluster, no internet), but the host itself still
answers on the gateway and on every address it has, so its services (the router on :80, SSH
on :2222, the daemon's TCP ports, etcd) would be one ``RUN curl`` away. The chain below, jumped
to from ``INPUT`` for the network's subnet, accepts the cache's port on the gateway and rejects
the rest at once (a reset, not a silent drop, so a build fails fast instead of hanging).

Why the chain is rebuilt whole rather than added to: several daemons on one host (each with
its cache port) share the network, and each start used to add its port for good, so the
chain grew by one rule per daemon start. :meth:`Fence.plan` gives the whole chain as it should
be, written with one ``iptables-restore`` (one commit: the chain is never empty, so never
open, on the way), and keeps another daemon's port only while something listens on it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable

from shipmate.errors import ValidationError
from shipmate.router.keys import validate_port

CHAIN = "SHIPMATE-BUILD"
_CHAIN_NAME = re.compile(r"^[A-Z][A-Z0-9-]{0,27}$")
# An ACCEPT rule of the chain as ``iptables -S`` prints it (with the implied ``-m tcp``).
_ACCEPT = re.compile(r"^-A (?P<chain>\S+) -d (?P<gw>[0-9.]+)/32 -p tcp -m tcp "
                     r"--dport (?P<port>\d+) -j ACCEPT$")
_LISTEN = "0A"  # the TCP_LISTEN state in /proc/net/tcp


@dataclasses.dataclass(frozen=True)
class Fence:
    """The fence of one build network: the chain of rules and the jump to it from ``INPUT``."""

    chain: str
    subnet: str
    gateway: str

    def rules(self, ports: Iterable[int]) -> list[str]:
        """The chain's rules in order, as ``iptables -S`` prints them: the cache ``ports`` on
        the gateway (sorted, once each), then the rejects."""
        accept = [f"-A {self.chain} -d {self.gateway}/32 -p tcp -m tcp --dport {p} -j ACCEPT"
                  for p in sorted({validate_port(p) for p in ports})]
        return [*accept, f"-A {self.chain} -p tcp -j REJECT --reject-with tcp-reset",
                f"-A {self.chain} -j REJECT --reject-with icmp-port-unreachable"]

    def accepted(self, listing: str) -> set[int]:
        """The ports ``listing`` (``iptables -S CHAIN``) accepts on this network's gateway."""
        found = (_ACCEPT.match(line.strip()) for line in listing.splitlines())
        return {int(m["port"]) for m in found
                if m and m["chain"] == self.chain and m["gw"] == self.gateway}

    def plan(self, listing: str, ours: Iterable[int], listening: set[int]) -> str | None:
        """``iptables-restore --noflush`` input that makes the chain hold exactly the rules it
        should, or None when ``listing`` (its rules now) already does. Kept: ``ours``, and
        the ports other daemons accepted on this gateway that something still listens on.
        Dropped: ports nobody listens on (a daemon that died), other gateways (a build
        network made anew), duplicates, anything else."""
        want = self.rules({*ours, *(self.accepted(listing) & listening)})
        have = [ln.strip() for ln in listing.splitlines() if ln.startswith("-A ")]
        if have == want:
            return None
        # Declaring the chain flushes it; the rules follow in the same commit.
        return "\n".join(["*filter", f":{self.chain} - [0:0]", *want, "COMMIT", ""])

    def jump(self) -> tuple[str, ...]:
        """The ``INPUT`` rule that sends the build network's traffic to the chain."""
        return ("INPUT", "-s", self.subnet, "-j", self.chain)


def fence(subnet: str, gateway: str, chain: str = CHAIN) -> Fence:
    """The fence that lets the build network ``subnet`` reach only the cache on ``gateway``."""
    net = ipaddress.ip_network(_checked(subnet, "subnet"), strict=False)
    gw = ipaddress.ip_address(_checked(gateway, "gateway"))
    if net.version != 4 or gw not in net:
        raise ValidationError(f"build network {net} with gateway {gw} cannot be fenced",
                              hint="an IPv4 bridge network is needed")
    if not _CHAIN_NAME.match(chain):
        raise ValidationError(f"invalid iptables chain name {chain!r}")
    return Fence(chain, str(net), str(gw))


def removal(chain: str, listing: str, ours: Iterable[int]) -> str | None:
    """``iptables-restore --noflush`` input that takes the ACCEPT rules of ``ours`` on any
    gateway out of ``chain`` (``listing``: its rules now), for a daemon that stops; None when
    there are none. The rejects and the jump stay: a closed fence costs nothing, while one
    taken down as another daemon of this host builds would open the host to that build."""
    mine = {validate_port(p) for p in ours}
    drop = [f"-D{ln.strip()[2:]}" for ln in listing.splitlines()
            if (m := _ACCEPT.match(ln.strip())) and m["chain"] == chain
            and int(m["port"]) in mine]
    return "\n".join(["*filter", *drop, "COMMIT", ""]) if drop else None


def listening_ports(*tables: str) -> set[int]:
    """The TCP ports something listens on, from ``/proc/net/tcp`` and ``tcp6`` texts."""
    ports = set()
    for table in tables:
        for line in table.splitlines()[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[3] == _LISTEN and ":" in fields[1]:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _checked(text: str, what: str) -> str:
    try:
        ipaddress.ip_interface(text)
    except ValueError:
        raise ValidationError(f"invalid build network {what} {text!r}") from None
    return text
