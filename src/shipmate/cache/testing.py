"""Fakes for testing the cache (shipped, like ``trio.testing``).

:class:`FakeUpstream` is an HTTP server on loopback holding files in memory that can be made to
misbehave per path: truncate, serve wrong bytes, answer 500, stall, reset the connection.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib

from aiohttp import web

LAST_MODIFIED = "Sat, 01 Jun 2024 00:00:00 GMT"


@dataclasses.dataclass
class Fault:
    """How a path misbehaves. ``mode``: truncate | wrong | error500 | stall | reset | slow."""

    mode: str
    times: int = 1_000_000  # how many requests misbehave before the path heals
    delay: float = 0.0  # seconds per chunk for ``slow``


class FakeUpstream:
    """A loopback HTTP server serving ``files`` (path -> bytes), counting GETs per path."""

    def __init__(self, chunk: int = 64 * 1024) -> None:
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, Fault] = {}
        self.redirects: dict[str, str] = {}
        self.gets: collections.Counter[str] = collections.Counter()
        self.conditional: collections.Counter[str] = collections.Counter()
        self.headers_seen: list[dict[str, str]] = []
        self.chunk = chunk
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def authority(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on an ephemeral loopback port."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    def _fault(self, path: str) -> Fault | None:
        fault = self.faults.get(path)
        if fault is None or fault.times <= 0:
            return None
        fault.times -= 1
        return fault

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.raw_path
        self.headers_seen.append(dict(request.headers))
        if request.method == "GET":
            self.gets[path] += 1
        if path in self.redirects:
            raise web.HTTPFound(self.redirects[path])
        body = self.files.get(path)
        if body is None:
            return web.Response(status=404, text="not found upstream\n")
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            self.conditional[path] += 1
            return web.Response(status=304, headers={"ETag": etag})
        fault = self._fault(path)
        if fault is not None and fault.mode == "error500":
            return web.Response(status=500, text="upstream exploded\n")
        return await self._send(request, body, etag, fault)

    async def _send(self, request: web.Request, body: bytes, etag: str,
                    fault: Fault | None) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"ETag": etag, "Last-Modified": LAST_MODIFIED,
                                           "Content-Type": "application/octet-stream"})
        resp.content_length = len(body)
        await resp.prepare(request)
        mode = fault.mode if fault else ""
        if mode == "wrong":
            body = bytes(b ^ 0xFF for b in body[:16]) + body[16:]
        end = len(body) // 2 if mode in ("truncate", "reset", "stall") else len(body)
        for i in range(0, end, self.chunk):
            await resp.write(body[i:min(i + self.chunk, end)])
            if fault is not None and fault.delay:
                await asyncio.sleep(fault.delay)
        if mode == "stall":
            await asyncio.sleep(3600)
        if mode in ("truncate", "reset") and request.transport is not None:
            if mode == "reset":
                request.transport.abort()
            else:
                request.transport.close()
            return resp
        await resp.write_eof()
        return resp
