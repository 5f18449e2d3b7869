"""Sending a cached body with ``sendfile(2)`` from worker threads, so the kernel's work of
sending spreads over every CPU instead of running on the event loop's one.

On an asyncio loop every ``sendfile`` call runs on the loop's thread: at 10 or 50 fast
clients the cache's one core is the limit, while apt-cacher-ng (a thread per connection)
uses them all. Here a worker thread sends the body with blocking ``sendfile`` calls while the
client keeps up: the connection is made blocking, with a send timeout of
:data:`HANDOFF_SECONDS`, only while the thread has it, and the transport's reading is paused
so the loop does not touch it. A client that takes longer than that to make room is handed
back to the event loop (``loop.sendfile``), where a slow or stalled client costs no thread.

The thread works on duplicates of the socket and file descriptors and closes them itself, so
a cancelled response or a closed connection never leaves it writing to a reused descriptor.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

HANDOFF_SECONDS = 0.05
WORKERS = 64  # threads only exist while a body is being sent; each waits in the kernel

_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="cache-sendfile")
    return _pool


def send_until_slow(sock_fd: int, file_fd: int, offset: int, count: int,
                    stop: threading.Event, handoff: float) -> int:
    """Send ``count`` bytes of ``file_fd`` from ``offset`` with blocking ``sendfile`` calls on
    the connection ``sock_fd`` until all are sent, ``stop`` is set, or the client has made no
    room for ``handoff`` seconds; the bytes sent. Makes the connection blocking for the
    while and non-blocking again after, and closes both descriptors (the caller's
    duplicates). OSError when the client has gone."""
    try:
        conn = socket.socket(fileno=sock_fd)
    except BaseException:
        os.close(sock_fd)
        os.close(file_fd)
        raise
    sent = 0
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(handoff))
        os.set_blocking(sock_fd, True)  # the flag is the connection's, shared with the loop
        while sent < count and not stop.is_set():
            try:
                n = os.sendfile(sock_fd, file_fd, offset + sent, count - sent)
            except BlockingIOError:  # the send timeout passed with nothing sent
                break
            if n == 0:
                raise EOFError(f"file ended {count - sent} bytes early")
            sent += n
        return sent
    finally:
        with contextlib.suppress(OSError):
            os.set_blocking(sock_fd, False)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(0))
        conn.close()
        os.close(file_fd)


async def send_file(transport: asyncio.Transport, file: BinaryIO, count: int) -> None:
    """Send the first ``count`` bytes of ``file`` on ``transport`` (headers already written)."""
    loop = asyncio.get_running_loop()
    sock = transport.get_extra_info("socket")
    sent = 0
    if sock is not None and transport.get_write_buffer_size() == 0:
        sent = await _in_thread(transport, sock.fileno(), file.fileno(), count)
    if sent < count:
        await loop.sendfile(transport, file, sent, count - sent)


async def _in_thread(transport: asyncio.Transport, sock_fd: int, file_fd: int,
                     count: int) -> int:
    """Run :func:`send_until_slow` in a worker, the transport not reading meanwhile."""
    sock_dup = os.dup(sock_fd)
    try:
        file_dup = os.dup(file_fd)
    except BaseException:
        os.close(sock_dup)
        raise
    was_reading = transport.is_reading()
    transport.pause_reading()
    stop = threading.Event()
    try:
        job = asyncio.get_running_loop().run_in_executor(
            _executor(), send_until_slow, sock_dup, file_dup, 0, count, stop, HANDOFF_SECONDS)
    except BaseException:  # no worker will close them (the pool is shutting down)
        os.close(sock_dup)
        os.close(file_dup)
        if was_reading:
            _resume(transport)
        raise
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        stop.set()  # the worker stops at its next call, or at the send timeout
        raise
    finally:
        if was_reading:
            if job.done():
                _resume(transport)
            else:  # cancelled: the worker still has the connection
                job.add_done_callback(lambda _: _resume(transport))


def _resume(transport: asyncio.Transport) -> None:
    if not transport.is_closing():
        transport.resume_reading()


def _timeval(seconds: float) -> bytes:
    return struct.pack("ll", int(seconds), int(seconds % 1 * 1_000_000))
