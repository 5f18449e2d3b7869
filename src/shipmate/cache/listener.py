"""The cache's listening socket, and the send buffer of the connections it accepts.

A fixed send buffer (``SO_SNDBUF``, like nginx's ``listen ... sndbuf=``) instead of the
kernel's autotuning, which on Linux gives a loopback connection its largest buffer
(``net.ipv4.tcp_wmem``, 4 MB) at once, and grows any fast one's towards it. A connection
accepted from the socket inherits it. On the 2-core machine of ``docs/cache.md`` a 1 MB
buffer (512 kB asked for: Linux keeps twice what it is asked for) gave 10 fast clients, and
50 reading 1 MiB at a time, 1.3-1.6 times the MB/s of the autotuned 4 MB: with less queued per connection the machine spent less CPU per byte, most of it in the
clients' copy out of their sockets (``bench/sndbuf.py`` compares sizes). 1 MB in flight
still fills a 1 Gbit/s link with a round trip of 8 ms.
"""

from __future__ import annotations

import socket

BACKLOG = 1024


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
