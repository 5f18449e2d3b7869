"""The daemon's HTTP API (aiohttp). Subsystems add their own routes; this module holds the
error mapping, the streaming helper and the core routes (status, info, kv)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from shipmate import config as config_mod
from shipmate.errors import NotFoundError, ShipmateError, ValidationError

if TYPE_CHECKING:
    from shipmate.daemon.main import Daemon

log = logging.getLogger(__name__)
DAEMON_KEY: web.AppKey[Daemon] = web.AppKey("daemon")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(exc: ShipmateError) -> web.Response:
    """The JSON body every API error has: ``{"error": {"code", "message", "hint"}}``."""
    return web.json_response({"error": exc.to_dict()}, status=exc.status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map ShipmateError (and bugs) to JSON error answers; the one place this happens."""
    try:
        return await handler(request)
    except ShipmateError as exc:
        return error_response(exc)
    except web.HTTPException:
        raise
    except Exception as exc:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(ShipmateError(f"internal error: {type(exc).__name__}: {exc}",
                                            hint="see the daemon log (shipmate status shows it)"))


async def stream_lines(request: web.Request, lines: AsyncIterator[str]) -> web.StreamResponse:
    """Stream text lines to the client as they come; an error becomes a final JSON line that
    :meth:`DaemonClient.stream` turns back into the exception."""
    resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    await resp.prepare(request)
    try:
        try:
            async for line in lines:
                await resp.write((line.rstrip("\n") + "\n").encode())
        except ShipmateError as exc:
            await resp.write((json.dumps({"error": exc.to_dict()}) + "\n").encode())
        except ConnectionResetError:
            raise
        except Exception as exc:  # a bug: still end the stream, or the client waits forever
            log.exception("unhandled error while streaming %s %s", request.method, request.path)
            err = ShipmateError(f"internal error: {type(exc).__name__}: {exc}",
                                hint="see the daemon log")
            await resp.write((json.dumps({"error": err.to_dict()}) + "\n").encode())
        await resp.write_eof()
    except ConnectionResetError:  # the client went away: nobody is left to tell
        log.info("the client of %s %s went away", request.method, request.path)
    return resp


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body, or a 400 saying what was wrong."""
    try:
        data = await request.json()
    except ValueError as exc:
        raise ValidationError(f"request body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValidationError("request body must be a JSON object")
    return data


def daemon_of(request: web.Request) -> Daemon:
    """The running daemon."""
    return request.app[DAEMON_KEY]


async def status(request: web.Request) -> web.Response:
    """What runs: components, store backend, engine version."""
    return web.json_response(await daemon_of(request).status())


async def info(request: web.Request) -> web.Response:
    """The resolved settings."""
    return web.json_response(config_mod.describe(daemon_of(request).config))


async def kv_get(request: web.Request) -> web.Response:
    """Read a key or (with ?prefix=1) a prefix."""
    store = daemon_of(request).store
    key = "/" + request.match_info["key"]
    if request.query.get("prefix"):
        kvs, rev = await store.range(key)
        return web.json_response({"revision": rev, "kvs": [_kv(kv) for kv in kvs]})
    kv = await store.get(key)
    if kv is None:
        raise NotFoundError(f"no key {key}")
    return web.json_response(_kv(kv))


async def kv_put(request: web.Request) -> web.Response:
    """Write a key; answers once the write is durable."""
    key = "/" + request.match_info["key"]
    rev = await daemon_of(request).store.put(key, await request.read())
    return web.json_response({"revision": rev})


async def kv_delete(request: web.Request) -> web.Response:
    """Delete a key (or a prefix with ?prefix=1)."""
    key = "/" + request.match_info["key"]
    n = await daemon_of(request).store.delete(key, prefix=bool(request.query.get("prefix")))
    return web.json_response({"deleted": n})


def _kv(kv: Any) -> dict[str, Any]:
    return {"key": kv.key, "value": kv.value.decode(errors="replace"),
            "create_revision": kv.create_revision, "mod_revision": kv.mod_revision,
            "version": kv.version, "lease": kv.lease}


def make_app(daemon: Daemon) -> web.Application:
    """The API application with the core routes; subsystems add theirs after."""
    app = web.Application(middlewares=[errors_middleware], client_max_size=64 * 2**20)
    app[DAEMON_KEY] = daemon
    app.router.add_get("/v1/status", status)
    app.router.add_get("/v1/info", info)
    app.router.add_get("/v1/kv/{key:.*}", kv_get)
    app.router.add_put("/v1/kv/{key:.*}", kv_put)
    app.router.add_delete("/v1/kv/{key:.*}", kv_delete)
    return app
