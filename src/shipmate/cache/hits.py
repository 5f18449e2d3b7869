"""Cache hits on the shortest path: complete cached bodies served without per-request hashing,
path lookups, thread hops or Python-level chunk loops.

* A plain ``GET``/``HEAD`` (no ``Range``, no conditional header) of a small body is answered from
  a bounded in-memory copy (:class:`SmallBodies`): one write of headers and body.
* A plain request for a larger body is answered with ``sendfile(2)`` from a file opened on the
  event loop (an ``open`` of a cached file is a metadata operation; aiohttp's ``FileResponse``
  would hop to a thread twice per request for it), sent from worker threads while the client
  keeps up (:mod:`sendbody`); the same worker may answer the client's next plain ``GET`` of a
  cached body too (follow-ons, :class:`FollowOns`).
* Anything else (``Range``, ``If-Modified-Since``, ``If-None-Match``...) goes to aiohttp's
  ``FileResponse``, which implements those rules.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from typing import BinaryIO, Protocol

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from shipmate.cache import followloop, sendbody
from shipmate.cache.nextrequest import body_headers, validators
from shipmate.cache.stats import Counters

SMALL_MAX = 64 * 1024  # bodies up to this size are kept in memory once served
SMALL_TOTAL = 8 * 1024 * 1024  # the in-memory copies never exceed this in total
# request headers that need FileResponse's rules (ranges and preconditions)
SLOW_HEADERS = ("Range", "If-Range", "If-Modified-Since", "If-Unmodified-Since",
                "If-None-Match", "If-Match")


@dataclasses.dataclass(frozen=True)
class Small:
    """An in-memory copy of a small cached body and the validators FileResponse would send."""

    sha256: str
    body: bytes
    etag: str
    last_modified: str


class SmallBodies:
    """A least-recently-used set of small bodies, at most ``total`` bytes."""

    def __init__(self, total: int = SMALL_TOTAL) -> None:
        self.total = total
        self.size = 0
        self._items: collections.OrderedDict[str, Small] = collections.OrderedDict()

    def get(self, key: str, sha256: str) -> Small | None:
        """The copy of ``key`` if it is of the body with ``sha256`` (a replaced body is a miss)."""
        item = self._items.get(key)
        if item is None or item.sha256 != sha256:
            return None
        self._items.move_to_end(key)
        return item

    def put(self, key: str, item: Small) -> None:
        """Keep ``item``, dropping the least recently used copies beyond the total."""
        old = self._items.pop(key, None)
        if old is not None:
            self.size -= len(old.body)
        self._items[key] = item
        self.size += len(item.body)
        while self.size > self.total and self._items:
            _, dropped = self._items.popitem(last=False)
            self.size -= len(dropped.body)

    def discard(self, key: str) -> None:
        """Forget ``key`` (its body was removed)."""
        old = self._items.pop(key, None)
        if old is not None:
            self.size -= len(old.body)


def needs_file_response(request: web.BaseRequest) -> bool:
    """Whether ``request`` asks for a range or has preconditions."""
    headers = request.headers
    return any(h in headers for h in SLOW_HEADERS)


def small_response(item: Small, content_type: str, how: str) -> web.Response:
    """A complete small body (aiohttp leaves the body out for HEAD)."""
    return web.Response(body=item.body, headers={
        "Content-Type": content_type, "X-Cache": how, "ETag": item.etag,
        "Last-Modified": item.last_modified, "Accept-Ranges": "bytes"})


def read_small(path: os.PathLike[str] | str, sha256: str) -> Small:
    """Read a small body and its validators (FileNotFoundError when it has gone)."""
    with open(path, "rb", buffering=0) as f:
        etag, last_modified = validators(os.fstat(f.fileno()))
        return Small(sha256, f.read(), etag, last_modified)


class FollowOns(Protocol):
    """Answers, from a worker thread, the requests that follow a large hit on its connection
    (see :mod:`followloop`), and counts what workers send."""

    def lookup(self, target: str, accept: str) -> followloop.Body | None:
        """The cached body that answers a plain GET of ``target`` as it is (thread-safe)."""

    def reporter(self, counters: Counters, size: int) -> followloop.Report:
        """A thread-safe report for one response: its body of ``size`` bytes (counted in
        ``counters``) and the follow-ons after it."""

    def apply(self) -> None:
        """Count what was reported (on the event loop)."""


def nothing_read_ahead(request: web.BaseRequest) -> bool:
    """Whether aiohttp has read nothing after ``request`` (a keep-alive request without a
    body): then the next request is whole in the socket, and a worker may read it. aiohttp
    reads what the socket holds, so it may hold the start of the next request; it has none
    if nothing it read is still queued and the last bytes it read ended a request head
    (``at_head_end``, kept by the server's protocol)."""
    protocol = request.protocol
    return (request.keep_alive and not request.body_exists
            and "Upgrade" not in request.headers  # aiohttp keeps what follows aside
            and getattr(protocol, "at_head_end", False)
            and not getattr(protocol, "_messages", True))


class SendfileResponse(web.StreamResponse):
    """A complete cached body sent with ``sendfile(2)`` from an already open file, counted in
    ``counters`` once sent. Closes the file whatever happens."""

    def __init__(self, file: BinaryIO, size: int, counters: Counters,
                 headers: dict[str, str], follow_ons: FollowOns) -> None:
        super().__init__(headers=headers)
        self._file = file
        self._size = size
        self._counters = counters
        self._follow_ons = follow_ons
        self.content_length = size

    @classmethod
    def open(cls, path: os.PathLike[str] | str, counters: Counters, content_type: str,
             how: str, follow_ons: FollowOns) -> SendfileResponse:
        """Open ``path`` (FileNotFoundError when it has gone) and build the response."""
        file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by prepare()
        try:
            st = os.fstat(file.fileno())
            return cls(file, st.st_size, counters, body_headers(st, content_type, how),
                       follow_ons)
        except BaseException:
            file.close()
            raise

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        """Send the headers, then the body with sendfile (:func:`sendbody.send_file`)."""
        if self._file.closed:  # prepared before: nothing more to send
            return await super().prepare(request)
        try:
            writer = await super().prepare(request)
            if request.method == "HEAD" or self._size == 0:
                return writer
            transport = request.transport
            if transport is None:
                raise ConnectionResetError("client went away")
            follow = self._follow_ons
            try:
                await sendbody.send_file(
                    transport, self._file, self._size,
                    follow.reporter(self._counters, self._size), follow.lookup,
                    lambda: nothing_read_ahead(request))
            finally:
                follow.apply()
            await super().write_eof()
            return writer
        finally:
            self._file.close()
