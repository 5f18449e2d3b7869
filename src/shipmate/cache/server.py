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
BACKLOG = 1024


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
        self.responder = Responder(self.storage)
        self._runner: web.ServerRunner | None = None
        self._server: _Server | None = None
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
        # aiohttp closes a connection still waiting for a request's headers after its
        # keep-alive timeout, counted from the connection's start or the last response
        self._server = _Server(self._handle, int(self.config.cache_client_connections),
                               handler_cancellation=False, access_log=access,
                               keepalive_timeout=float(self.config.cache_header_timeout))
        self._runner = web.ServerRunner(self._server, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.cache_bind, self._port, backlog=BACKLOG)
        await site.start()
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
        self.responder.close()
        self.storage.close()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            self.storage.flush()

    def snapshot(self) -> dict[str, Any]:
        """Stats plus storage figures."""
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
        if self._server is not None and request.transport in self._server.over_cap:
            self.stats.over_cap += 1
            resp = error_response(503, f"client {request.remote} has more than "
                                  f"{self._server.per_client} connections open (cache_client_"
                                  "connections); try again when some are closed")
            resp.force_close()
            return resp
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


class _Server(web.Server):
    """aiohttp's low-level server, keeping each client address's open connections: those
    beyond ``per_client`` are in :attr:`over_cap` (their requests are answered 503)."""

    def __init__(self, handler: Any, per_client: int, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.per_client = per_client
        self.over_cap: set[asyncio.BaseTransport] = set()
        self._open: dict[str, set[asyncio.BaseTransport]] = {}

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        """Count the connection under its client's address."""
        super().connection_made(handler, transport)
        mine = self._open.setdefault(_client(transport), set())
        # a CONNECT tunnel takes its transport over, and ends without connection_lost here
        mine.difference_update([t for t in mine if t.is_closing()])
        mine.add(transport)
        if len(mine) > self.per_client:
            self.over_cap.add(transport)

    def connection_lost(self, handler: RequestHandler,
                        exc: BaseException | None = None) -> None:
        """Count the connection out."""
        super().connection_lost(handler, exc)
        transport = handler.transport
        if transport is None:
            return
        self.over_cap.discard(transport)
        client = _client(transport)
        mine = self._open.get(client, set())
        mine.discard(transport)
        if not mine:
            self._open.pop(client, None)


def _client(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) else ""


def _status_of(error: str) -> int:
    return 504 if error.startswith("upstream stalled") else 502
