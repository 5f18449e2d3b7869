"""The cache's listening socket, and the send buffer of the connections it accepts.

``cache_sndbuf`` (0 by default: the kernel's autotuning) sets ``SO_SNDBUF`` on the
listening socket, like nginx's ``listen ... sndbuf=``, and every connection accepted from it
inherits it. Measured in ``docs/cache.md`` (``bench/sndbuf.py``): for clients on loopback a
fixed 1 MB (512 kB asked for: Linux keeps twice what it is asked for) gave 1.3-1.6 times the
MB/s of the autotuned 4 MB at 10 and 50 clients, but for clients in containers, over the
Docker bridge, 512 kB was 11-19% slower than autotuning and 1 MB -9% to +7%. So the default
is autotuning.
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
