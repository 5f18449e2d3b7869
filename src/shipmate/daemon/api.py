"""The daemon's HTTP API (aiohttp): the core routes (status, info, kv), and the subsystems'
routes added with the parts of the wiring they serve. The error mapping and the streaming
helpers every route uses live in :mod:`shipmate.httpapi.server`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from shipmate import config as config_mod
from shipmate.errors import NotFoundError
from shipmate.httpapi.server import errors_middleware

if TYPE_CHECKING:
    from shipmate.daemon.main import Daemon

DAEMON_KEY: web.AppKey[Daemon] = web.AppKey("daemon")


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
    store = daemon_of(request).wiring.store
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
    rev = await daemon_of(request).wiring.store.put(key, await request.read())
    return web.json_response({"revision": rev})


async def kv_delete(request: web.Request) -> web.Response:
    """Delete a key (or a prefix with ?prefix=1)."""
    key = "/" + request.match_info["key"]
    n = await daemon_of(request).wiring.store.delete(key, prefix=bool(request.query.get("prefix")))
    return web.json_response({"deleted": n})


def _kv(kv: Any) -> dict[str, Any]:
    return {"key": kv.key, "value": kv.value.decode(errors="replace"),
            "create_revision": kv.create_revision, "mod_revision": kv.mod_revision,
            "version": kv.version, "lease": kv.lease}


def make_app(daemon: Daemon) -> web.Application:
    """The API application: the core routes, then the fleet and PaaS routes."""
    from aiohttp.typedefs import Middleware

    from shipmate.agent.api import add_fleet_routes
    from shipmate.backup.api import add_backup_routes
    from shipmate.backup.create import BackupMaker
    from shipmate.backup.restore import Restorer
    from shipmate.paas.acl_api import add_acl_routes
    from shipmate.paas.api import add_paas_routes
    from shipmate.paas.storage import Storage
    from shipmate.paas.storage_api import add_storage_routes
    from shipmate.services.api import add_service_routes
    from shipmate.services.manager import ServiceManager
    from shipmate.web.audit_http import add_events_routes, audit_middleware
    from shipmate.web.metrics import add_metrics_route

    wiring = daemon.wiring
    # The audit trail records every change made through the API (inside the errors
    # middleware, so it sees a failed change's error).
    middlewares: list[Middleware] = [errors_middleware]
    if wiring.events is not None:
        middlewares.append(audit_middleware(wiring.events))
    app = web.Application(middlewares=middlewares, client_max_size=64 * 2**20)
    app[DAEMON_KEY] = daemon
    app.router.add_get("/v1/status", status)
    app.router.add_get("/v1/info", info)
    app.router.add_get("/v1/kv/{key:.*}", kv_get)
    app.router.add_put("/v1/kv/{key:.*}", kv_put)
    app.router.add_delete("/v1/kv/{key:.*}", kv_delete)
    add_fleet_routes(app, wiring.store, wiring.agent)
    add_paas_routes(app, wiring.paas)
    if wiring.certs is not None:
        from shipmate.paas.certs_api import add_certs_routes

        add_certs_routes(app, wiring.certs, wiring.letsencrypt)
    add_storage_routes(app, Storage(wiring.store, wiring.config))
    if wiring.cron is not None:
        from shipmate.paas.cron_api import add_cron_routes

        add_cron_routes(app, wiring.cron)
    add_acl_routes(app, wiring.store)
    services = ServiceManager(wiring.store, wiring.engine, wiring.config, wiring.paas)
    add_service_routes(app, services)
    add_backup_routes(app, BackupMaker(wiring.store, wiring.config, services),
                      Restorer(wiring.store, wiring.config, wiring.paas, services))
    if wiring.events is not None:
        add_events_routes(app, wiring.events)
    add_metrics_route(app, wiring.cache)
    if wiring.users is not None:
        from shipmate.web.users_api import add_users_routes

        add_users_routes(app, wiring.users)
    return app
