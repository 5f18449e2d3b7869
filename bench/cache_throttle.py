"""A simulated WAN link in front of a real mirror, so caches can be compared where a cache
matters (used by bench/cache.py)."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from aiohttp import web


class ThrottledUpstream:
    """A reverse proxy on loopback to ``target`` (e.g. ``http://deb.debian.org``) that adds
    ``latency`` seconds before each response and caps the total bandwidth at ``bits_per_s``
    (a token bucket shared by all connections, as on one WAN link)."""

    def __init__(self, target: str, bits_per_s: float = 20e6, latency: float = 0.05,
                 port: int = 0) -> None:
        self.target = target.rstrip("/")
        self.rate = bits_per_s / 8
        self.latency = latency
        self.port = port
        self.bytes = 0
        self._next = 0.0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Listen on loopback (``port``, or an ephemeral one)."""
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _pace(self, n: int) -> None:
        now = time.monotonic()
        self._next = max(self._next, now) + n / self.rate
        if self._next > now:
            await asyncio.sleep(self._next - now)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        await asyncio.sleep(self.latency)
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("if-modified-since", "if-none-match", "range", "accept")}
        async with self._session.get(self.target + request.raw_path, headers=headers,
                                     allow_redirects=False) as up:
            resp = web.StreamResponse(status=up.status, headers={
                k: v for k, v in up.headers.items()
                if k.lower() in ("content-type", "content-length", "last-modified", "etag",
                                 "content-range", "accept-ranges", "location")})
            try:
                await resp.prepare(request)
                async for chunk in up.content.iter_chunked(16 * 1024):
                    await self._pace(len(chunk))
                    self.bytes += len(chunk)
                    await resp.write(chunk)
                await resp.write_eof()
            except ConnectionResetError:  # the cache went away (stopped, or gave up)
                pass
            return resp
