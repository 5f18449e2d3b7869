"""``GET /metrics``: the daemon's metrics (:mod:`shipmate.metrics`) and, when this machine runs
the package cache, the cache's, in Prometheus' text format.

Served on the daemon's unix socket to whoever can open it; on the TCP ``api_port`` only with
``metrics_token_file`` set, to requests that carry ``Authorization: Bearer <token>``
(Prometheus' ``bearer_token_file``); the ``api_clients`` allowlist guards the image route, the
token this one. The token lives in a file, not in a setting's value, so ``shipmate info``
(also over SSH) never shows it.
"""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from shipmate import metrics
from shipmate.cache import stats as cache_stats
from shipmate.errors import ConfigError

if TYPE_CHECKING:
    from shipmate.cache.server import CacheServer

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_CACHE: web.AppKey[CacheServer | None] = web.AppKey("metrics_cache")
_TOKEN: web.AppKey[bytes] = web.AppKey("metrics_token", bytes)


def exposition(cache: CacheServer | None) -> str:
    """The whole text: this daemon's metrics, then the cache's."""
    text = metrics.REGISTRY.render()
    if cache is not None:
        text += cache_stats.prometheus(cache.snapshot())
    return text


def _answer(cache: CacheServer | None) -> web.Response:
    return web.Response(body=exposition(cache).encode(), headers={"Content-Type": CONTENT_TYPE})


async def get_metrics(request: web.Request) -> web.Response:
    """``GET /metrics`` on the unix socket."""
    return _answer(request.app[_CACHE])


async def get_metrics_with_token(request: web.Request) -> web.Response:
    """``GET /metrics`` on TCP: a bearer token is required."""
    token = request.app[_TOKEN]
    given = request.headers.get("Authorization", "").encode()
    if not hmac.compare_digest(given, b"Bearer " + token):
        raise web.HTTPUnauthorized(text="a bearer token (metrics_token_file) is required\n",
                                   headers={"WWW-Authenticate": 'Bearer realm="shipmate"'})
    return _answer(request.app[_CACHE])


def read_token(path: Path) -> bytes:
    """The token in ``path`` (its first line), refused when too short to be a secret."""
    try:
        token = path.read_bytes().strip().split(b"\n")[0].strip()
    except OSError as exc:
        raise ConfigError(f"cannot read metrics_token_file {path}: {exc.strerror}",
                          hint="write a long random token into it, e.g. "
                               "`openssl rand -hex 32 > FILE`") from exc
    if len(token) < 16:
        raise ConfigError(f"the token in {path} is shorter than 16 characters",
                          hint="use `openssl rand -hex 32 > FILE`")
    return token


def add_metrics_route(app: web.Application, cache: CacheServer | None) -> None:
    """``GET /metrics`` on the daemon's (unix socket) API."""
    app[_CACHE] = cache
    app.router.add_get("/metrics", get_metrics)


def add_tcp_metrics_route(app: web.Application, cache: CacheServer | None,
                          token: bytes) -> None:
    """``GET /metrics`` on the TCP listener, behind ``token`` (see :func:`read_token`)."""
    app[_CACHE] = cache
    app[_TOKEN] = token
    app.router.add_get("/metrics", get_metrics_with_token)
