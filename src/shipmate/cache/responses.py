"""Answering a client: from a cached body, from a download in progress, or rewritten (mirror
indexes whose links must point back at the cache)."""

from __future__ import annotations

import asyncio
import collections
import os
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from shipmate.cache import hits, mirrors
from shipmate.cache.fetch import CHUNK, Download, State
from shipmate.cache.routes import Rewrite, Target
from shipmate.cache.sendfile import ThreadedSender
from shipmate.cache.stats import Counters
from shipmate.cache.storage import Entry, Storage

_REWRITE_TYPES = {
    Rewrite.PYPI_HTML: "text/html",
    Rewrite.PYPI_JSON: "application/vnd.pypi.simple.v1+json",
    Rewrite.NPM: "application/json",
}


class Responder:
    """Builds responses; counts bytes."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        # rewritten bodies, keyed by (cache key, body hash, base URL): big npm documents are
        # parsed once, not per request
        self._memo: collections.OrderedDict[tuple[str, str, str], bytes] = (
            collections.OrderedDict())
        self.small = hits.SmallBodies()
        self.sender = ThreadedSender()

    def close(self) -> None:
        """Stop the sending threads."""
        self.sender.close()

    async def from_cache(self, request: web.BaseRequest, target: Target, entry: Entry,
                         counters: Counters, base: str, how: str) -> web.StreamResponse | None:
        """Serve ``entry``; None when its body has gone (the caller fetches again)."""
        path = self.storage.path(entry)
        try:
            if target.rewrite is Rewrite.NONE:
                resp = (await self._large(request, entry, path, counters, how)
                        or self._plain(request, entry, path, counters, how))
            else:
                resp = await self._rewritten_response(request, target, entry, path, counters,
                                                      base, how)
        except FileNotFoundError:
            self.storage.remove(entry.key)
            self.small.discard(entry.key)
            return None
        self.storage.touch(entry)
        return resp

    async def _large(self, request: web.BaseRequest, entry: Entry, path: Path,
                     counters: Counters, how: str) -> web.StreamResponse | None:
        """A plain ``GET`` of a large body, sent from the sending threads; None for every
        other request (small bodies, ``HEAD``, ranges, preconditions)."""
        if (entry.size <= hits.SMALL_MAX or request.method != "GET"
                or hits.needs_file_response(request)):
            return None
        resp = await self.sender.respond(request, path, {
            "Content-Type": entry.content_type, "X-Cache": how})
        if resp is not None:
            counters.bytes_from_cache += resp.content_length or 0
            counters.bytes_served += resp.content_length or 0
        return resp

    def _plain(self, request: web.BaseRequest, entry: Entry, path: Path, counters: Counters,
               how: str) -> web.StreamResponse:
        """A body as it is: small ones from memory, the rest through ``FileResponse``
        (sendfile; HEAD, single Range, If-Modified-Since/304)."""
        if entry.size <= hits.SMALL_MAX and not hits.needs_file_response(request):
            item = self.small.get(entry.key, entry.sha256)
            if item is None:
                # a small read of a file just written or served: page cache, no thread hop
                item = hits.read_small(path, entry.sha256)
                self.small.put(entry.key, item)
            if request.method != "HEAD":
                counters.bytes_from_cache += len(item.body)
                counters.bytes_served += len(item.body)
            return hits.small_response(item, entry.content_type, how)
        if not path.exists():  # FileResponse would answer 404: fetch it again instead
            raise FileNotFoundError(path)
        return _CountingFileResponse(counters, path, chunk_size=CHUNK, headers={
            "Content-Type": entry.content_type, "X-Cache": how})

    async def _rewritten_response(self, request: web.BaseRequest, target: Target, entry: Entry,
                                  path: Path, counters: Counters, base: str,
                                  how: str) -> web.Response:
        body = await self._rewritten(target, entry, path, base)
        resp = web.Response(body=body, headers={"X-Cache": how},
                            content_type=_REWRITE_TYPES[target.rewrite])
        sent = 0 if request.method == "HEAD" else len(body)
        counters.bytes_from_cache += sent
        counters.bytes_served += sent
        return resp

    async def _rewritten(self, target: Target, entry: Entry, path: Path, base: str) -> bytes:
        memo_key = (entry.key, entry.sha256, base)
        body = self._memo.get(memo_key)
        if body is None:
            body = await asyncio.to_thread(_rewrite, target, path, base)
            self._memo[memo_key] = body
            while len(self._memo) > 32:
                self._memo.popitem(last=False)
        self._memo.move_to_end(memo_key)
        return body

    async def stream(self, request: web.BaseRequest, dl: Download,
                     counters: Counters) -> web.StreamResponse | None:
        """Serve a download in progress from its temp file as it grows (Range is ignored:
        a full 200 answer is always allowed). None when the download is already over (the
        caller serves the committed body)."""
        if dl.read_fd < 0:
            return None
        fd = os.dup(dl.read_fd)  # before any await: the download may end at the next one
        try:
            return await self._stream(request, dl, fd, counters)
        finally:
            os.close(fd)

    async def _stream(self, request: web.BaseRequest, dl: Download, fd: int,
                      counters: Counters) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": dl.content_type, "X-Cache": "MISS"})
        if dl.total is not None:
            resp.content_length = dl.total
        await resp.prepare(request)
        if request.method == "HEAD":
            return resp
        await self._pump(request, resp, dl, fd, counters)
        await resp.write_eof()
        return resp

    async def _pump(self, request: web.BaseRequest, resp: web.StreamResponse, dl: Download,
                    fd: int, counters: Counters) -> None:
        offset = 0
        while True:
            available = dl.available
            if offset < available:
                data = os.pread(fd, min(CHUNK, available - offset), offset)
                if not data:
                    raise OSError("temp file shrank")
                await resp.write(data)
                offset += len(data)
                counters.bytes_served += len(data)
            elif dl.state is State.DONE:
                return
            elif dl.state is not State.STREAMING:
                _abort(request)  # the download failed: the client must not think it complete
                raise ConnectionResetError(dl.error)
            else:
                await dl.changed()


class _CountingFileResponse(web.FileResponse):
    """A FileResponse that adds what it sends to the stats (aiohttp prepares it)."""

    def __init__(self, counters: Counters, path: Path, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self._counters = counters

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        """Send, then count the body bytes sent."""
        writer = await super().prepare(request)
        if request.method != "HEAD" and self.status in (200, 206):
            sent = self.content_length or 0
            self._counters.bytes_from_cache += sent
            self._counters.bytes_served += sent
        return writer


def _abort(request: web.BaseRequest) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


def _rewrite(target: Target, path: Path, base: str) -> bytes:
    body = path.read_bytes()
    if target.rewrite is Rewrite.PYPI_HTML:
        return mirrors.rewrite_pypi_html(body, target.url, base)
    if target.rewrite is Rewrite.PYPI_JSON:
        return mirrors.rewrite_pypi_json(body, target.url, base)
    return mirrors.rewrite_npm(body, base)


def error_response(status: int, message: str, counters: Counters | None = None
                   ) -> web.Response:
    """A short plain-text error."""
    if counters is not None:
        counters.errors += 1
    return web.Response(status=status, text=message + "\n",
                        headers={"X-Cache": "ERROR", "Cache-Control": "no-store"})
