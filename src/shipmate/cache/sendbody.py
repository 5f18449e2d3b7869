"""Sending a cached body with ``sendfile(2)`` from worker threads, so the kernel's work of
sending spreads over every CPU instead of running on the event loop's one.

On an asyncio loop every ``sendfile`` call runs on the loop's thread: at 10 or 50 fast
clients the cache's one core is the limit, while apt-cacher-ng (a thread per connection)
uses them all. Here a worker thread sends the body with blocking ``sendfile`` calls while the
client keeps up: the connection is made blocking, with a send timeout of
:data:`HANDOFF_SECONDS`, only while the thread has it, and the transport's reading is paused
so the loop does not touch it. A client that takes longer than that to make room is handed
back to the event loop (``loop.sendfile``), where a slow or stalled client costs no thread,
when another body is waiting for a thread and every thread is busy, or after
:data:`blocksend.PATIENCE_SECONDS`; until then the thread, which nobody else needs, keeps it.

Follow-on hits (:mod:`followloop`): when the caller allows it, the worker then answers the
client's next requests that are plain GET requests for other cached bodies. It gives the
connection back when the client asks for anything else or nothing more, when another body is
waiting for a thread and every thread is busy (so the pool stays fair), after
:data:`FOLLOW_SECONDS`, or when told to stop.

The thread works on duplicates of the socket and file descriptors and closes them itself, so
a cancelled response or a closed connection never leaves it writing to a reused descriptor.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

from shipmate.cache import blocksend
from shipmate.cache.followloop import Lookup, Outcome, Report, Tail, follow

HANDOFF_SECONDS = 0.05
FOLLOW_SECONDS = 10.0  # then the connection goes back to the loop, and the worker to the pool
WORKERS = 64  # threads only exist while a body is being sent; each waits in the kernel

_pool: ThreadPoolExecutor | None = None


class _Demand:
    """Bodies handed to the pool and not yet taken up by a worker, and busy workers. Its
    descriptor (an eventfd) is readable while a body waits for a thread the pool cannot
    start, which wakes the workers waiting for their clients' next requests at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.waiting = 0
        self.busy = 0
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._raised = False

    def add(self, waiting: int = 0, busy: int = 0) -> None:
        with self._lock:
            self.waiting += waiting
            self.busy += busy
            wanted = self.thread_wanted()
            if wanted and not self._raised:
                os.eventfd_write(self._fd, 1)
            elif self._raised and not wanted:
                os.eventfd_read(self._fd)
            self._raised = wanted

    def thread_wanted(self) -> bool:
        """Whether a body waits for a thread the pool cannot start (all are busy)."""
        return self.waiting > 0 and self.busy >= WORKERS

    def fileno(self) -> int:
        return self._fd


_demand = _Demand()


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="cache-sendfile")
    return _pool


def send_and_follow(sock_fd: int, file_fd: int, offset: int, count: int,
                    stop: threading.Event, handoff: float, lookup: Lookup | None,
                    report: Report, patient: bool = True) -> Outcome:
    """Send ``count`` bytes of ``file_fd`` from ``offset`` with blocking ``sendfile`` calls on
    the connection ``sock_fd`` until all are sent, ``stop`` is set, or the client has made no
    room for ``handoff`` seconds (see ``patient``). Makes the connection blocking for the
    while and non-blocking again after, and closes both descriptors (the caller's
    duplicates). OSError when the client has gone. Then, with a ``lookup`` and the body sent
    whole, answer the client's follow-on requests that it finds a body for (see the module's
    docstring).
    ``report`` is told of each answer sent whole, the first body included. ``patient``: a
    client that makes no room for ``handoff`` seconds keeps the thread while no other body
    waits for one, up to :data:`blocksend.PATIENCE_SECONDS`."""
    try:
        conn = socket.socket(fileno=sock_fd)
    except BaseException:
        os.close(sock_fd)
        os.close(file_fd)
        raise
    with blocksend.blocking(conn, handoff):
        try:
            first = blocksend.send(conn, file_fd, offset, count, stop, _demand, patient)
        finally:
            os.close(file_fd)
        outcome = Outcome(first)
        if first == count:
            report(None)
            if lookup is not None:
                follow(conn, lookup, report, stop, time.monotonic() + FOLLOW_SECONDS,
                       outcome, _demand, patient)
        return outcome


async def send_file(transport: asyncio.Transport, file: BinaryIO, count: int,
                    report: Report, lookup: Lookup | None = None,
                    ready: Callable[[], bool] = lambda: False) -> None:
    """Send the first ``count`` bytes of ``file`` on ``transport`` (headers already written),
    calling ``report(None)`` once they are sent. With a ``lookup``, and ``ready()`` true once
    the transport has stopped reading (aiohttp holds no unparsed bytes), follow-on requests
    may be answered too, each reported once sent (from the worker thread)."""
    loop = asyncio.get_running_loop()
    sock = transport.get_extra_info("socket")
    outcome = Outcome(0)
    if sock is not None and transport.get_write_buffer_size() == 0:
        outcome = await _in_thread(transport, sock.fileno(), file.fileno(), count, report,
                                   lookup, ready)
    if outcome.first < count:
        await loop.sendfile(transport, file, outcome.first, count - outcome.first)
        report(None)
    if outcome.broken:
        transport.abort()  # a request was read and not answered: the client must not wait
    if outcome.tail is not None:
        await _send_tail(transport, outcome.tail)
        report(outcome.tail.sent)


async def _send_tail(transport: asyncio.Transport, tail: Tail) -> None:
    with open(tail.file_fd, "rb", buffering=0) as file:  # noqa: ASYNC230 - a descriptor
        if tail.head:
            transport.write(tail.head)
        await asyncio.get_running_loop().sendfile(transport, file, tail.offset, tail.count)


async def _in_thread(transport: asyncio.Transport, sock_fd: int, file_fd: int, count: int,
                     report: Report, lookup: Lookup | None,
                     ready: Callable[[], bool]) -> Outcome:
    """Run :func:`send_and_follow` in a worker, the transport not reading meanwhile."""
    sock_dup = os.dup(sock_fd)
    try:
        file_dup = os.dup(file_fd)
    except BaseException:
        os.close(sock_dup)
        raise
    was_reading = transport.is_reading()
    transport.pause_reading()
    if not (was_reading and ready()):
        lookup = None  # aiohttp holds bytes of the next request, or reads for another reason
    stop = threading.Event()
    _demand.add(waiting=1)
    try:
        job = asyncio.get_running_loop().run_in_executor(
            _executor(), _taken_up, sock_dup, file_dup, count, stop, lookup, report)
    except BaseException:  # no worker will close them (the pool is shutting down)
        _demand.add(waiting=-1)
        os.close(sock_dup)
        os.close(file_dup)
        if was_reading:
            _resume(transport)
        raise
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        stop.set()  # the worker stops at its next call, or at the send timeout
        job.add_done_callback(_close_tail)
        raise
    finally:
        if was_reading:
            if job.done():
                _resume(transport)
            else:  # cancelled: the worker still has the connection
                job.add_done_callback(lambda _: _resume(transport))


def _taken_up(sock_fd: int, file_fd: int, count: int, stop: threading.Event,
              lookup: Lookup | None, report: Report) -> Outcome:
    _demand.add(waiting=-1, busy=1)
    try:
        return send_and_follow(sock_fd, file_fd, 0, count, stop, HANDOFF_SECONDS, lookup,
                               report)
    finally:
        _demand.add(busy=-1)


def _close_tail(job: asyncio.Future[Outcome]) -> None:
    """A cancelled job's tail will not be sent: close its file."""
    if not job.cancelled() and job.exception() is None and job.result().tail is not None:
        os.close(job.result().tail.file_fd)  # type: ignore[union-attr]


def _resume(transport: asyncio.Transport) -> None:
    if not transport.is_closing():
        transport.resume_reading()
