"""Sending on a connection that a worker thread holds (:mod:`sendbody`): the connection made
blocking with a send timeout, and a body sent with blocking ``sendfile`` calls and Nagle's
algorithm on, until it is sent, the thread is told to stop, or the client has stalled and the
thread is wanted elsewhere."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Protocol

PATIENCE_SECONDS = 30.0  # a client reading nothing keeps its thread no longer than this


class Demand(Protocol):
    """The pool's demand for threads, as a worker that holds a connection sees it."""

    def thread_wanted(self) -> bool:
        """Whether another body waits for a thread the pool cannot start (all are busy)."""

    def fileno(self) -> int:
        """A descriptor that polls readable while :meth:`thread_wanted`."""


@contextlib.contextmanager
def blocking(conn: socket.socket, handoff: float) -> Iterator[None]:
    """The connection blocking with a send timeout of ``handoff``, then as it was; closed."""
    fd = conn.fileno()
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(handoff))
        os.set_blocking(fd, True)  # the flag is the connection's, shared with the loop
        yield
    finally:
        with contextlib.suppress(OSError):
            os.set_blocking(fd, False)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(0))
        conn.close()


def send(conn: socket.socket, file_fd: int, offset: int, count: int, stop: threading.Event,
         demand: Demand, patient: bool) -> int:
    """Send ``count`` bytes of ``file_fd`` from ``offset`` on ``conn`` (made :func:`blocking`)
    until all are sent or ``stop`` is set; the number sent. A client that makes no room for
    the send timeout stops the sending unless ``patient``; a patient one only when the thread
    is wanted for another body (``demand``) or after :data:`PATIENCE_SECONDS`. OSError when
    the client has gone, EOFError when the file ends early."""
    with _full_segments(conn):
        return _sendfile(conn.fileno(), file_fd, offset, count, stop, demand, patient)


@contextlib.contextmanager
def _full_segments(conn: socket.socket) -> Iterator[None]:
    """Nagle's algorithm on while a body is sent, then off again as aiohttp has it.

    With ``TCP_NODELAY`` (aiohttp's setting) every ACK that comes back makes the kernel send
    the partial segment at the end of the send queue: a fast client gets bodies in segments
    of 40 kB on average instead of 64 kB, and the machine handles half as many packets
    again per byte. Turning ``TCP_NODELAY`` back on sends the body's last partial segment at
    once, so the client does not wait for an ACK to get its final bytes."""
    try:
        nodelay = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        if nodelay:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
    except OSError:  # not a TCP connection
        nodelay = 0
    try:
        yield
    finally:
        if nodelay:
            with contextlib.suppress(OSError):  # the client has gone
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, nodelay)


def _sendfile(sock_fd: int, file_fd: int, offset: int, count: int, stop: threading.Event,
              demand: Demand, patient: bool) -> int:
    sent = 0
    stalled_since = 0.0
    while sent < count and not stop.is_set():
        try:
            n = os.sendfile(sock_fd, file_fd, offset + sent, count - sent)
        except BlockingIOError:  # the send timeout passed with nothing sent
            now = time.monotonic()
            stalled_since = stalled_since or now
            if (not patient or demand.thread_wanted()
                    or now - stalled_since >= PATIENCE_SECONDS):
                break
            continue
        stalled_since = 0.0
        if n == 0:
            raise EOFError(f"file ended {count - sent} bytes early")
        sent += n
    return sent


def _timeval(seconds: float) -> bytes:
    return struct.pack("ll", int(seconds), int(seconds % 1 * 1_000_000))
