"""Small cache hits: a plain ``GET``/``HEAD`` (no ``Range``, no conditional header) of a small
body is answered from a bounded in-memory copy (:class:`SmallBodies`), in one write of headers
and body, with the validators aiohttp's ``FileResponse`` would send. Everything else is a
``FileResponse`` (see :mod:`responses`)."""

from __future__ import annotations

import collections
import dataclasses
import os
from email.utils import formatdate

from aiohttp import web

SMALL_MAX = 64 * 1024  # bodies up to this size are kept in memory once served
SMALL_TOTAL = 8 * 1024 * 1024  # the in-memory copies never exceed this in total
# request headers that need FileResponse's rules (ranges and preconditions)
SLOW_HEADERS = ("Range", "If-Range", "If-Modified-Since", "If-Unmodified-Since",
                "If-None-Match", "If-Match")


@dataclasses.dataclass(frozen=True)
class Small:
    """An in-memory copy of a small cached body and its validators."""

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
        self.discard(key)
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


def validators(st: os.stat_result) -> tuple[str, str]:
    """``(ETag, Last-Modified)`` as aiohttp's FileResponse derives them from a file's stat."""
    return (f'"{st.st_mtime_ns:x}-{st.st_size:x}"',
            formatdate(int(st.st_mtime), usegmt=True))


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
