"""The package cache's HTTP server (aiohttp): proxy and URL-prefix forms for apt, the PyPI and
npm mirrors, CONNECT tunnels to allowlisted hosts, stats, metrics and the HTML report.

``CacheServer(config)`` is what the daemon and ``shipmate cache serve`` run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from shipmate.cache import stats as stats_mod
from shipmate.cache.fetch import Download, Fetcher, State
from shipmate.cache.followons import CachedFollowOns
from shipmate.cache.listener import listening_socket, tune_connection
from shipmate.cache.policy import (
    Action,
    Allowlist,
    Cached,
    Kind,
    Refused,
    base_url,
    client_allowed,
    decide,
    parse_networks,
)
from shipmate.cache.responses import Responder, error_response
from shipmate.cache.routes import ADMIN, Rewrite, Routes, Target, cached_route, is_admin
from shipmate.cache.stats import Counters, Stats
from shipmate.cache.storage import Storage
from shipmate.cache.tunnel import tunnel
from shipmate.config import Config

log = logging.getLogger(__name__)

FLUSH_SECONDS = 5.0


class CacheServer:
    """The package cache. ``await start()``, then serve until ``await stop()``."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.allowlist = Allowlist.parse(config.cache_upstreams)
        self.routes = Routes.build(self.allowlist, config.cache_pypi_upstream,
                                   config.cache_npm_upstream)
        self.clients = parse_networks(config.cache_clients)
        self.fresh_seconds = float(config.cache_fresh_seconds)
        self.storage = Storage(Path(config.cache_dir), int(config.cache_max_bytes))
        self.stats = Stats()
        self.fetcher = Fetcher(self.storage, self.stats, self.allowlist,
                               float(config.cache_upstream_timeout))
        self.follow_ons = CachedFollowOns(self.storage, self.routes, self.stats,
                                          self.fresh_seconds)
        self.responder = Responder(self.storage, self.follow_ons)
        self._runner: web.ServerRunner | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._port: int = int(config.cache_port)
        self._clients_seen: dict[str, bool] = {}

    @property
    def port(self) -> int:
        """The port listened on (the real one when ``cache_port`` was 0)."""
        return self._port

    async def start(self) -> None:
        """Open storage, start the upstream client, listen."""
        await asyncio.to_thread(self.storage.open)
        await self.fetcher.start()
        # no access log by default: one log line per hit costs more than serving the hit
        access = logging.getLogger("aiohttp.access") if self.config.debug else None
        server = _Server(self._handle, handler_cancellation=False, access_log=access,
                         local_sndbuf=int(self.config.cache_local_sndbuf))
        self._runner = web.ServerRunner(server, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = listening_socket(self.config.cache_bind, self._port, int(self.config.cache_sndbuf))
        try:
            site = web.SockSite(self._runner, sock)
            await site.start()
        except BaseException:
            sock.close()
            raise
        sockets = self._runner.addresses
        if sockets:
            self._port = int(sockets[0][1])
        self._flusher = asyncio.create_task(self._flush_loop())
        log.info("package cache listening on %s:%d", self.config.cache_bind, self._port)

    async def stop(self) -> None:
        """Stop listening, cancel downloads, write the index."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.fetcher.stop()
        self.storage.close()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            self.follow_ons.apply()  # a long run of follow-ons marks its bodies used meanwhile
            self.storage.flush()

    def snapshot(self) -> dict[str, Any]:
        """Stats plus storage figures."""
        self.follow_ons.apply()  # what worker threads sent, not yet counted
        return self.stats.snapshot({
            "entries": len(self.storage.entries()), "bytes": self.storage.total_bytes,
            "max_bytes": self.storage.max_bytes, "downloads_in_progress":
            len(self.fetcher.downloads)})

    def gc(self) -> dict[str, int]:
        """Run :meth:`Storage.gc`, sparing downloads in progress."""
        return self.storage.gc(self.fetcher.active_temp_files())

    # -- request handling ----------------------------------------------------------------------
    def _client_ok(self, remote: str | None) -> bool:
        ok = self._clients_seen.get(remote or "")
        if ok is None:
            if len(self._clients_seen) > 4096:
                self._clients_seen.clear()
            ok = self._clients_seen[remote or ""] = client_allowed(remote, self.clients)
        return ok

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if not self._client_ok(request.remote):
            self.stats.refused += 1
            return error_response(403, f"client {request.remote} is not in cache_clients")
        if request.method == "CONNECT":
            return await tunnel(request, self.allowlist, self.stats)
        raw = request.raw_path
        if is_admin(raw):
            return self._admin(request, raw)
        if request.method not in ("GET", "HEAD"):
            return error_response(405, "the cache answers GET and HEAD")
        try:
            target = cached_route(raw, request.headers.get("Accept", ""), self.routes)
        except Refused as exc:
            self.stats.refused += 1
            return error_response(exc.status, exc.message)
        counters = self.stats.of(target.fmt)
        counters.requests += 1
        base = base_url(request.headers.get("Host"), f"127.0.0.1:{self.port}")
        return await self._serve(request, target, counters, base)

    async def _serve(self, request: web.BaseRequest, target: Target, counters: Counters,
                     base: str) -> web.StreamResponse:
        for _ in range(3):  # a body evicted under our feet is fetched again
            entry = self.storage.get(target.key)
            cached = Cached(Kind(entry.kind), entry.fetched_at) if entry else None
            action = decide(cached, time.time(), self.fresh_seconds)
            if action is Action.HIT and entry is not None:
                resp = await self.responder.from_cache(request, target, entry, counters, base,
                                                       "HIT")
                if resp is not None:
                    counters.hits += 1
                    return resp
                continue
            dl = self.fetcher.fetch(target, entry if action is Action.REVALIDATE else None)
            await dl.started()
            result = await self._after_start(request, dl, counters, base)
            if result is not None:
                return result
        return error_response(503, "cache entry kept vanishing; try again", counters)

    async def _after_start(self, request: web.BaseRequest, dl: Download, counters: Counters,
                           base: str) -> web.StreamResponse | None:
        target = dl.target
        if dl.state in (State.NOT_MODIFIED, State.STALE):
            entry = self.storage.get(target.key)
            if entry is None:
                return None
            how = "REVALIDATED" if dl.state is State.NOT_MODIFIED else "STALE"
            resp = await self.responder.from_cache(request, target, entry, counters, base, how)
            if resp is not None and dl.state is State.NOT_MODIFIED:
                counters.revalidated += 1
            elif resp is not None:
                counters.hits += 1
            return resp
        if dl.state is State.UPSTREAM_ERROR:
            counters.errors += 1
            return web.Response(status=dl.error_status, body=dl.error_body, headers={
                "Content-Type": dl.content_type, "X-Cache": "ERROR", "Cache-Control": "no-store"})
        if dl.state is State.FAILED:
            return error_response(_status_of(dl.error), dl.error, counters)
        counters.misses += 1
        if target.rewrite is not Rewrite.NONE:
            await dl.finished()  # indexes are rewritten whole, once verified
            if dl.state is not State.DONE:
                return error_response(_status_of(dl.error), dl.error, counters)
            entry = self.storage.get(target.key)
            if entry is None:
                return None
            return await self.responder.from_cache(request, target, entry, counters, base,
                                                   "MISS")
        return await self.responder.stream(request, dl, counters)

    # -- admin ---------------------------------------------------------------------------------
    def _admin(self, request: web.BaseRequest, raw: str) -> web.StreamResponse:
        path = raw.partition("?")[0]
        if path == f"{ADMIN}/gc" and request.method == "POST":
            if not client_allowed(request.remote, parse_networks("127.0.0.0/8,::1/128")):
                return error_response(403, "gc is allowed from loopback only")
            return web.json_response(self.gc())
        if request.method not in ("GET", "HEAD"):
            return error_response(405, "GET only")
        snap = self.snapshot()
        if path == f"{ADMIN}/stats.json":
            return web.Response(text=json.dumps(snap, indent=2, sort_keys=True),
                                content_type="application/json")
        if path == "/metrics":
            return web.Response(text=stats_mod.prometheus(snap),
                                content_type="text/plain", charset="utf-8")
        if path in ("/", ADMIN, ADMIN + "/"):
            return web.Response(text=stats_mod.html_report(snap), content_type="text/html")
        return error_response(404, "unknown admin path")


class _Protocol(RequestHandler):
    """aiohttp's protocol, giving a connection from this machine its send buffer
    (:func:`listener.tune_connection`) and noting whether the last bytes it read ended a
    request head (see :func:`hits.nothing_read_ahead`)."""

    at_head_end = False
    local_sndbuf = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            tune_connection(sock, transport.get_extra_info("peername"), self.local_sndbuf)
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.at_head_end = data.endswith(b"\r\n\r\n")
        super().data_received(data)


class _Server(web.Server):
    """aiohttp's low-level server, with :class:`_Protocol` connections, which get the send
    buffer ``local_sndbuf`` when they come from this machine."""

    def __init__(self, *args: Any, local_sndbuf: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.local_sndbuf = local_sndbuf

    def __call__(self) -> RequestHandler:
        try:
            protocol = _Protocol(self, loop=self._loop, **self._kwargs)
        except (AttributeError, TypeError):  # another aiohttp: plain protocols, no follow-ons
            return super().__call__()
        protocol.local_sndbuf = self.local_sndbuf
        return protocol


def _status_of(error: str) -> int:
    return 504 if error.startswith("upstream stalled") else 502
