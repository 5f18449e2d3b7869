"""The cache's listening socket, and the send buffer of the connections it accepts.

Two settings, because the right buffer depends on where the client is (measured in
``docs/cache.md`` with ``bench/sndbuf.py``):

* ``cache_local_sndbuf`` (512 kB by default) for clients on this machine outside containers,
  whose connections go through loopback (:func:`from_this_machine`). There the kernel gives
  each connection ``tcp_wmem``'s largest buffer, 4 MB, at once, with no round trip to cover;
  a fixed 1 MB (512 kB asked for: Linux keeps twice that) gave the cache 1.2-1.8 times the
  MB/s at 10 and 50 clients, and a bare loop of ``sendfile`` calls 1.1-1.5 times.
* ``cache_sndbuf`` (0 by default: the kernel's autotuning) for every other client. From
  containers, over the Docker bridge, a fixed 512 kB was 11-19% slower than autotuning and
  1 MB -9% to +7%; on a LAN a fixed buffer caps a download at one buffer per round trip.

``cache_sndbuf`` is set on the listening socket, like nginx's ``listen ... sndbuf=``, and
every accepted connection inherits it; :func:`tune_connection` then sets the local one on
each connection from this machine, once, when it is accepted.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

BACKLOG = 1024
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)  # Linux 4.2

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def listening_socket(bind: str, port: int, sndbuf: int) -> socket.socket:
    """A non-blocking TCP socket listening on ``bind``:``port`` (the first address the name
    resolves to; port 0: any free one) whose connections get a send buffer of ``sndbuf``
    bytes, or the kernel's autotuned one when ``sndbuf`` is 0. The kernel caps the buffer
    at ``net.core.wmem_max``."""
    family, kind, proto, _, address = socket.getaddrinfo(
        bind or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if sndbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        sock.bind(address)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _address(host: str) -> Address | None:
    try:
        ip = ipaddress.ip_address(host.partition("%")[0])  # fe80::1%eth0: the zone aside
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # a dual-stack socket's IPv4 peer
    return ip


def from_this_machine(peer: str, own: Callable[[Address], bool]) -> bool:
    """Whether a connection from ``peer`` comes through loopback: the peer address is a
    loopback one or, as ``own`` tells, one of this machine's. (Which of its addresses a local
    client's connection shows depends on the route and on NAT: Docker's masquerading turns
    a connection to the bridge gateway into one from the machine's main address.)"""
    ip = _address(peer)
    return ip is not None and (ip.is_loopback or own(ip))


def is_own_address(ip: Address) -> bool:
    """Whether ``ip`` is one of this machine's addresses: a socket can bind to it. (No port is
    taken: ``IP_BIND_ADDRESS_NO_PORT``. A machine with ``ip_nonlocal_bind`` set would take
    every address for its own.)"""
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        try:
            probe.bind((str(ip), 0))
        except OSError:
            return False
    return True


def tune_connection(sock: socket.socket, peername: object, local_sndbuf: int) -> None:
    """Give an accepted connection the send buffer ``local_sndbuf`` when it comes from this
    machine (:func:`from_this_machine`; 0: leave it as accepted)."""
    if (local_sndbuf and isinstance(peername, tuple)  # an IP connection, not a Unix one
            and from_this_machine(str(peername[0]), is_own_address)):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, local_sndbuf)
