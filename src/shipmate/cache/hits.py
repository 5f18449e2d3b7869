"""Cache hits on the shortest path: complete cached bodies served without per-request hashing,
path lookups, thread hops or Python-level chunk loops.

* A plain ``GET``/``HEAD`` (no ``Range``, no conditional header) of a small body is answered from
  a bounded in-memory copy (:class:`SmallBodies`): one write of headers and body.
* A plain request for a larger body is answered with ``sendfile(2)`` from a file opened on the
  event loop (an ``open`` of a cached file is a metadata operation; aiohttp's ``FileResponse``
  would hop to a thread twice per request for it), sent from worker threads while the client
  keeps up (:mod:`sendbody`).
* Anything else (``Range``, ``If-Modified-Since``, ``If-None-Match``...) goes to aiohttp's
  ``FileResponse``, which implements those rules.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from email.utils import formatdate
from typing import BinaryIO

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from shipmate.cache import sendbody
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


def validators(st: os.stat_result) -> tuple[str, str]:
    """``(ETag, Last-Modified)`` as aiohttp's FileResponse derives them from a file's stat, so
    both paths give a client the same validators."""
    return (f'"{st.st_mtime_ns:x}-{st.st_size:x}"',
            formatdate(st.st_mtime, usegmt=True))


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


class SendfileResponse(web.StreamResponse):
    """A complete cached body sent with ``sendfile(2)`` from an already open file, counted in
    ``counters`` once sent. Closes the file whatever happens."""

    def __init__(self, file: BinaryIO, size: int, counters: Counters,
                 headers: dict[str, str]) -> None:
        super().__init__(headers=headers)
        self._file = file
        self._size = size
        self._counters = counters
        self.content_length = size

    @classmethod
    def open(cls, path: os.PathLike[str] | str, counters: Counters, content_type: str,
             how: str) -> SendfileResponse:
        """Open ``path`` (FileNotFoundError when it has gone) and build the response."""
        file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by prepare()
        try:
            st = os.fstat(file.fileno())
            etag, last_modified = validators(st)
            return cls(file, st.st_size, counters, {
                "Content-Type": content_type, "X-Cache": how, "ETag": etag,
                "Last-Modified": last_modified, "Accept-Ranges": "bytes"})
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
            await sendbody.send_file(transport, self._file, self._size)
            await super().write_eof()
            self._counters.bytes_from_cache += self._size
            self._counters.bytes_served += self._size
            return writer
        finally:
            self._file.close()
