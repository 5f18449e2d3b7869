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
:data:`PATIENCE_SECONDS`; until then the thread, which nobody else needs, keeps it.

Follow-on hits: when the caller allows it, the worker then waits for the client's next
request (up to :data:`IDLE_SECONDS`) and, if it is a plain ``GET`` of another cached body
(:mod:`nextrequest`), answers it too, without the trips through the event loop and aiohttp
that would cost each request two thread wake-ups. Anything else is left unread in the socket
for aiohttp. The worker gives the connection back when the client asks nothing more, when
another body is waiting for a thread and every thread is busy (so the pool stays fair), after
:data:`FOLLOW_SECONDS`, or when told to stop.

The thread works on duplicates of the socket and file descriptors and closes them itself, so
a cancelled response or a closed connection never leaves it writing to a reused descriptor.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

from aiohttp.http import SERVER_SOFTWARE

from shipmate.cache import nextrequest

log = logging.getLogger(__name__)

HANDOFF_SECONDS = 0.05
PATIENCE_SECONDS = 30.0  # a client reading nothing keeps its thread no longer than this
IDLE_SECONDS = 1.0  # how long a thread waits for a client's next request
FOLLOW_SECONDS = 10.0  # then the connection goes back to the loop, and the worker to the pool
WORKERS = 64  # threads only exist while a body is being sent; each waits in the kernel

_pool: ThreadPoolExecutor | None = None


class _Demand:
    """Bodies handed to the pool and not yet taken up by a worker, and busy workers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.waiting = 0
        self.busy = 0

    def add(self, waiting: int = 0, busy: int = 0) -> None:
        with self._lock:
            self.waiting += waiting
            self.busy += busy

    def thread_wanted(self) -> bool:
        """Whether a body waits for a thread the pool cannot start (all are busy)."""
        return self.waiting > 0 and self.busy >= WORKERS


_demand = _Demand()


@dataclasses.dataclass(frozen=True)
class Body:
    """A cached body that answers a follow-on request as it is."""

    path: str
    content_type: str
    key: str
    fmt: str


@dataclasses.dataclass(frozen=True)
class Sent:
    """A follow-on request answered: the body's key, format and size."""

    key: str
    fmt: str
    size: int


# (raw target, Accept) -> the body that answers it, or None for aiohttp to answer.
# Called from worker threads: it must only read shared state.
Lookup = Callable[[str, str], Body | None]
# Told of each answer sent whole: None for the first body, then each follow-on's Sent.
# Called from worker threads and from the loop: it must be thread-safe.
Report = Callable[[Sent | None], None]


@dataclasses.dataclass
class Tail:
    """The rest of a follow-on answer, for the event loop to send: the part of the head the
    socket did not take, then ``count`` bytes of ``file_fd`` from ``offset``."""

    head: bytes
    file_fd: int
    offset: int
    count: int
    sent: Sent


@dataclasses.dataclass
class Outcome:
    """What a worker did: bytes of the first body sent, the tail of a follow-on it could not
    finish, and whether the connection is unusable (a request was read and its answer could
    not be sent)."""

    first: int
    tail: Tail | None = None
    broken: bool = False


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
    waits for one, up to :data:`PATIENCE_SECONDS`."""
    try:
        conn = socket.socket(fileno=sock_fd)
    except BaseException:
        os.close(sock_fd)
        os.close(file_fd)
        raise
    with _blocking(conn, handoff):
        try:
            first = _send(conn, file_fd, offset, count, stop, patient)
        finally:
            os.close(file_fd)
        outcome = Outcome(first)
        if first == count:
            report(None)
            if lookup is not None:
                _follow(conn, lookup, report, stop, handoff,
                        time.monotonic() + FOLLOW_SECONDS, outcome, patient)
        return outcome


@contextlib.contextmanager
def _blocking(conn: socket.socket, handoff: float) -> Iterator[None]:
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


def _send(conn: socket.socket, file_fd: int, offset: int, count: int, stop: threading.Event,
          patient: bool) -> int:
    with _full_segments(conn):
        return _sendfile(conn.fileno(), file_fd, offset, count, stop, patient)


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
              patient: bool) -> int:
    sent = 0
    stalled_since = 0.0
    while sent < count and not stop.is_set():
        try:
            n = os.sendfile(sock_fd, file_fd, offset + sent, count - sent)
        except BlockingIOError:  # the send timeout passed with nothing sent
            now = time.monotonic()
            stalled_since = stalled_since or now
            if not patient or _thread_wanted(stalled_since, now):
                break
            continue
        stalled_since = 0.0
        if n == 0:
            raise EOFError(f"file ended {count - sent} bytes early")
        sent += n
    return sent


def _follow(conn: socket.socket, lookup: Lookup, report: Report, stop: threading.Event,
            handoff: float, deadline: float, outcome: Outcome, patient: bool) -> None:
    """Answer follow-on requests until one is not for us, the client pauses, the deadline
    passes or ``stop`` is set; one not finished goes into ``outcome``."""
    while (not _demand.thread_wanted() and time.monotonic() < deadline
           and _request_waiting(conn, stop, handoff, deadline)):
        try:
            ask = nextrequest.plain_get(conn.recv(nextrequest.MAX_HEAD + 4, socket.MSG_PEEK))
        except OSError:
            return  # the client has gone: aiohttp will find out
        if ask is None:
            return
        try:
            body = lookup(ask.target, ask.accept)
        except Exception:  # a bug must not cost the connection: aiohttp answers instead
            log.exception("follow-on lookup of %r failed", ask.target)
            return
        sent = None if body is None else _answer(conn, ask, body, stop, outcome, patient)
        if sent is None:
            return
        report(sent)


def _request_waiting(conn: socket.socket, stop: threading.Event, handoff: float,
                     deadline: float) -> bool:
    """Wait for the client's next request (bytes to read); False after :data:`IDLE_SECONDS`
    without one, past ``deadline``, or as soon as the thread is wanted."""
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    deadline = min(deadline, time.monotonic() + IDLE_SECONDS)
    while not stop.is_set():
        wait = min(handoff, deadline - time.monotonic())
        if wait <= 0:
            return False
        if poller.poll(wait * 1000):
            return True
        if _demand.thread_wanted():
            return False
    return False


def _thread_wanted(stalled_since: float, now: float) -> bool:
    """Whether a thread whose client has read nothing since ``stalled_since`` should give
    the connection back: another body waits for a thread, or it has waited long enough."""
    return _demand.thread_wanted() or now - stalled_since >= PATIENCE_SECONDS


def _answer(conn: socket.socket, ask: nextrequest.PlainGet, body: Body,
            stop: threading.Event, outcome: Outcome, patient: bool) -> Sent | None:
    """Answer ``ask`` with ``body``; what was sent, or None when the request was left to
    aiohttp (nothing read) or its answer could not be finished here (its tail is then in
    ``outcome``, or the connection is marked broken)."""
    try:
        file_fd = os.open(body.path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # evicted meanwhile: aiohttp fetches it again
        return None
    keep_file = False
    try:
        st = os.fstat(file_fd)
        head = nextrequest.hit_head(st, body.content_type, SERVER_SOFTWARE, time.time())
        if head is None or st.st_size <= 0:
            return None
        if not _recv_exactly(conn, ask.length):
            outcome.broken = True
            return None
        head_sent = _send_head(conn, head)
        body_sent = (_send(conn, file_fd, 0, st.st_size, stop, patient)
                     if head_sent == len(head) else 0)
        sent = Sent(body.key, body.fmt, st.st_size)
        if body_sent < st.st_size:
            outcome.tail = Tail(head[head_sent:], file_fd, body_sent, st.st_size - body_sent,
                                sent)
            keep_file = True
            return None
        return sent
    except (OSError, EOFError):  # the client has gone, or the file ended early
        outcome.broken = True
        return None
    finally:
        if not keep_file:
            os.close(file_fd)


def _recv_exactly(conn: socket.socket, n: int) -> bool:
    """Read the ``n`` bytes already peeked at; False if they did not all come."""
    got = 0
    while got < n:
        chunk = conn.recv(n - got)
        if not chunk:
            return False
        got += len(chunk)
    return True


def _send_head(conn: socket.socket, head: bytes) -> int:
    """Send what the socket takes of ``head`` (held for the body's first packet); the count."""
    try:
        return conn.send(head, socket.MSG_MORE)
    except BlockingIOError:  # the send timeout passed with nothing sent
        return 0


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


def _timeval(seconds: float) -> bytes:
    return struct.pack("ll", int(seconds), int(seconds % 1 * 1_000_000))
