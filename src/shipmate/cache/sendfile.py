"""Large plain hits sent with ``sendfile(2)`` from a few threads, so that sending uses every
core (docs/cache.md, "Decisions").

The event loop still does everything but the copy: it parses the request, writes the headers
through aiohttp and waits while the client's socket is full. A thread of a small pool runs
``sendfile`` only while the socket takes data, then hands the wait back to the loop, so a slow
client holds no thread. The threads work on duplicates of the connection's and the file's
descriptors, closed only once the last send is over (by the thread itself when the response
was cancelled meanwhile): a descriptor the loop closes, and a number it reuses, can never
turn a send into a write elsewhere or a read of another file.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
from pathlib import Path

from aiohttp import web

from shipmate.cache import hits

#: A send that makes no progress for this long (the client stopped reading) is given up.
STALL_TIMEOUT = 60.0


def pool_size() -> int:
    """Two sending threads per core, at most 8: the copy is kernel work that needs a core
    each; more threads would only queue."""
    return min(8, 2 * (os.cpu_count() or 1))


class ThreadedSender:
    """Sends whole bodies of plain ``GET`` hits."""

    def __init__(self, threads: int | None = None) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            threads or pool_size(), thread_name_prefix="cache-send")

    def close(self) -> None:
        """Stop the threads (sends in progress finish first)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def respond(self, request: web.BaseRequest, path: Path,
                      headers: dict[str, str]) -> web.StreamResponse | None:
        """Send the file at ``path`` as a 200 answer; None when this connection cannot take
        the threaded path (the caller uses ``FileResponse``). FileNotFoundError when the body
        has gone."""
        transport = request.transport
        sock = None if transport is None else transport.get_extra_info("socket")
        if transport is None or sock is None or transport.is_closing():
            return None
        # opening and stat-ing a cached file is a page-cache lookup: no thread hop for it
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            etag, last_modified = hits.validators(st)
            resp = web.StreamResponse(headers={**headers, "ETag": etag,
                                               "Last-Modified": last_modified,
                                               "Accept-Ranges": "bytes"})
            resp.content_length = st.st_size
            await resp.prepare(request)
            if transport.get_write_buffer_size():
                # the headers are still queued in the transport: keep the order, let the
                # loop send the body after them
                with os.fdopen(fd, "rb", buffering=0, closefd=False) as body:
                    await asyncio.get_running_loop().sendfile(transport, body, 0, st.st_size)
            else:
                try:
                    await self._send(sock.fileno(), fd, st.st_size)
                except OSError as exc:  # gone, or stalled past STALL_TIMEOUT: cut it off,
                    transport.abort()  # as a client that cannot finish the body must see
                    raise ConnectionResetError(f"large hit not finished: {exc}") from exc
        finally:
            os.close(fd)
        await resp.write_eof()
        return resp

    async def _send(self, sock_fd: int, file_fd: int, count: int) -> None:
        loop = asyncio.get_running_loop()
        sock, body = os.dup(sock_fd), os.dup(file_fd)
        last: concurrent.futures.Future[int] | None = None
        try:
            offset = 0
            while offset < count:
                last = self._pool.submit(send_while_ready, sock, body, offset, count - offset)
                offset += await asyncio.wrap_future(last)
                if offset < count:
                    await writable(loop, sock, STALL_TIMEOUT)
        finally:
            if last is None:
                _close(sock, body)
            else:  # if we were cancelled, the thread may still be sending: it closes them
                last.add_done_callback(lambda _: _close(sock, body))


def _close(*fds: int) -> None:
    for fd in fds:
        os.close(fd)


def send_while_ready(sock_fd: int, file_fd: int, offset: int, count: int) -> int:
    """``sendfile`` until ``count`` bytes are sent or the socket is full; the bytes sent.
    Raises on a closed connection, and when the file ends early."""
    total = 0
    while total < count:
        try:
            sent = os.sendfile(sock_fd, file_fd, offset + total, count - total)
        except BlockingIOError:
            break
        if sent == 0:
            raise OSError(f"cached body ended {count - total} bytes early")
        total += sent
    return total


async def writable(loop: asyncio.AbstractEventLoop, fd: int, timeout: float) -> None:
    """Wait until the socket ``fd`` takes data again (TimeoutError after ``timeout``)."""
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, wake)
    try:
        async with asyncio.timeout(timeout):
            await ready
    finally:
        with contextlib.suppress(ValueError, OSError):
            loop.remove_writer(fd)
