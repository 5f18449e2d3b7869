"""The firewall rules that fence the build network: a build reaches the package cache on the
network's gateway and nothing else of the host. Pure: addresses in, iptables rules out.

Why both an internal network and rules: Docker's ``--internal`` bridge has no route beyond
the host (no other machine, no store on a cluster, no internet), but the host itself still
answers on the gateway and on every address it has, so its services (the router on :80, SSH
on :2222, the daemon's TCP ports, etcd) would be one ``RUN curl`` away. The chain below, jumped
to from ``INPUT`` for the network's subnet, accepts the cache's port on the gateway and rejects
the rest at once (a reset, not a silent drop, so a build fails fast instead of hanging).
"""

from __future__ import annotations

import dataclasses
import ipaddress

from shipmate.errors import ValidationError
from shipmate.router.keys import validate_port

CHAIN = "SHIPMATE-BUILD"


@dataclasses.dataclass(frozen=True)
class Rule:
    """One iptables rule: its chain, where a missing one goes (first or last), its match."""

    chain: str
    first: bool
    spec: tuple[str, ...]


def fence_rules(subnet: str, gateway: str, cache_ports: tuple[int, ...]) -> list[Rule]:
    """The rules that let the build network ``subnet`` reach only ``cache_ports`` on
    ``gateway``. Applied in order, each only if missing: several daemons on one host (each
    with its cache port) share the network and add their own port."""
    net = ipaddress.ip_network(_checked(subnet, "subnet"), strict=False)
    gw = ipaddress.ip_address(_checked(gateway, "gateway"))
    if net.version != 4 or gw not in net:
        raise ValidationError(f"build network {net} with gateway {gw} cannot be fenced",
                              hint="an IPv4 bridge network is needed")
    rules = [Rule(CHAIN, True, ("-d", f"{gw}/32", "-p", "tcp", "--dport", str(validate_port(p)),
                                "-j", "ACCEPT")) for p in cache_ports]
    rules += [Rule(CHAIN, False, ("-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset")),
              Rule(CHAIN, False, ("-j", "REJECT", "--reject-with", "icmp-port-unreachable")),
              Rule("INPUT", True, ("-s", str(net), "-j", CHAIN))]
    return rules


def iptables_argv(rule: Rule, action: str) -> list[str]:
    """``iptables`` arguments to check (``-C``) or add a rule (``-I`` first, ``-A`` last).
    ``-w`` waits for the xtables lock, which dockerd takes too."""
    if action == "check":
        return ["iptables", "-w", "5", "-C", rule.chain, *rule.spec]
    where = ["-I", rule.chain, "1"] if rule.first else ["-A", rule.chain]
    return ["iptables", "-w", "5", *where, *rule.spec]


def _checked(text: str, what: str) -> str:
    try:
        ipaddress.ip_interface(text)
    except ValueError:
        raise ValidationError(f"invalid build network {what} {text!r}") from None
    return text
