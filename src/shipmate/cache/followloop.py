"""Follow-on hits: after a worker thread has sent a large cached body (:mod:`sendbody`), it
waits for the client's next request and, if it is a plain ``GET`` of another cached body
(:mod:`nextrequest`), answers it too, without the trips through the event loop and aiohttp
that would cost each request two thread wake-ups.

The worker only recognises requests: it reads the next one with ``MSG_PEEK``, and anything it
does not take stays unread in the socket for aiohttp. A request is taken (its bytes read) only
once its answer is ready to be sent; an answer that cannot be finished here is left to the
event loop (:class:`Tail`), and a connection whose request was read and not answered is
marked broken, so the client is not left waiting.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable

from aiohttp.http import SERVER_SOFTWARE

from shipmate.cache import blocksend, nextrequest

log = logging.getLogger(__name__)

IDLE_SECONDS = 1.0  # how long a thread waits for a client's next request
STOP_SECONDS = 0.25  # how soon a thread waiting for a request notices it is told to stop


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


def follow(conn: socket.socket, lookup: Lookup, report: Report, stop: threading.Event,
           deadline: float, outcome: Outcome, demand: blocksend.Demand,
           patient: bool) -> None:
    """Answer follow-on requests on ``conn`` (made :func:`blocksend.blocking`) until one is
    not for us, the client pauses, the deadline passes, ``stop`` is set or the thread is
    wanted for another body (``demand``); one whose answer could not be finished here goes
    into ``outcome``. ``patient``: see :func:`blocksend.send`."""
    while (not demand.thread_wanted() and time.monotonic() < deadline
           and _request_waiting(conn, stop, deadline, demand)):
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
        sent = (None if body is None
                else _answer(conn, ask, body, stop, outcome, demand, patient))
        if sent is None:
            return
        report(sent)


def _request_waiting(conn: socket.socket, stop: threading.Event, deadline: float,
                     demand: blocksend.Demand) -> bool:
    """Wait for the client's next request (bytes to read); False after :data:`IDLE_SECONDS`
    without one, past ``deadline``, as soon as the thread is wanted for another body, or
    within :data:`STOP_SECONDS` of ``stop`` being set. The thread sleeps until one of those
    (the pool's eventfd says when it is wanted), waking at most every :data:`STOP_SECONDS`
    to look at ``stop``."""
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    poller.register(demand.fileno(), select.POLLIN)
    deadline = min(deadline, time.monotonic() + IDLE_SECONDS)
    while not stop.is_set():
        wait = min(STOP_SECONDS, deadline - time.monotonic())
        if wait <= 0:
            return False
        ready = {fd for fd, _ in poller.poll(wait * 1000)}
        if demand.fileno() in ready:
            return False
        if ready:
            return True
    return False


def _answer(conn: socket.socket, ask: nextrequest.PlainGet, body: Body,
            stop: threading.Event, outcome: Outcome, demand: blocksend.Demand,
            patient: bool) -> Sent | None:
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
        body_sent = (blocksend.send(conn, file_fd, 0, st.st_size, stop, demand, patient)
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
