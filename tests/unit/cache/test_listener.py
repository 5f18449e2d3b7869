"""Which connections count as coming from this machine (and so get ``cache_local_sndbuf``)."""

from __future__ import annotations

import ipaddress

import pytest

from shipmate.cache.listener import Address, from_this_machine

OWN = {ipaddress.ip_address(a) for a in ("192.0.2.2", "172.17.0.1", "fd00::2", "fe80::1")}


def own(ip: Address) -> bool:
    return ip in OWN


@pytest.mark.parametrize("peer", [
    "127.0.0.1",
    "127.0.0.2",  # all of 127/8 is loopback
    "::1",
    "::ffff:127.0.0.1",  # an IPv4 client of a dual-stack socket
    "192.0.2.2",  # the machine's main address: Docker masquerades a local client to it
    "172.17.0.1",  # a host process that connected to the bridge gateway, unmasqueraded
    "::ffff:192.0.2.2",
    "fd00::2",
    "fe80::1%eth0",
])
def test_loopback_and_own_addresses_are_this_machine(peer: str) -> None:
    assert from_this_machine(peer, own)


@pytest.mark.parametrize("peer", [
    "172.17.0.2",  # a container over the Docker bridge
    "192.0.2.9",  # another machine on the LAN
    "::ffff:192.0.2.9",
    "fe80::2%eth0",
    "not an address",
    "",
])
def test_other_peers_are_not(peer: str) -> None:
    assert not from_this_machine(peer, own)
