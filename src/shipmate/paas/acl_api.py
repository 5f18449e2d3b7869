"""``acl:*`` routes on the daemon API: who may act on an app (:mod:`.acl`). Who may *call*
them is decided before a command runs (``acl`` commands are an admin key's:
:mod:`.aclpolicy`)."""

from __future__ import annotations

from aiohttp import web

from shipmate.errors import NotFoundError
from shipmate.httpapi.server import json_body
from shipmate.paas import acl
from shipmate.spec.names import validate_app_name
from shipmate.store.base import Store

_STORE: web.AppKey[Store] = web.AppKey("acl_store", Store)


def _app(request: web.Request) -> str:
    return validate_app_name(request.match_info["app"])


async def list_names(request: web.Request) -> web.Response:
    """``acl:list APP``: the names granted the app."""
    store, app = request.app[_STORE], _app(request)
    if not await acl.app_exists(store, app):
        raise NotFoundError(f"App {app} does not exist")
    return web.json_response({"app": app, "names": await acl.names_for(store, app)})


async def add_name(request: web.Request) -> web.Response:
    """``acl:add APP NAME``; says whether a key or user has the name, and is an admin."""
    store, app, body = request.app[_STORE], _app(request), await json_body(request)
    name = str(body.get("name", ""))
    names = await acl.grant(store, app, name)
    return web.json_response({"app": app, "names": names, "name": name,
                              "known": await acl.known(store, name),
                              "admin": await acl.is_admin(store, name)}, status=201)


async def remove_name(request: web.Request) -> web.Response:
    """``acl:remove APP NAME``."""
    store, app = request.app[_STORE], _app(request)
    names = await acl.revoke(store, app, request.match_info["name"])
    return web.json_response({"app": app, "names": names})


def add_acl_routes(app: web.Application, store: Store) -> None:
    """Register the ``acl:*`` routes on ``store``'s records."""
    app[_STORE] = store
    r = app.router
    r.add_get("/v1/apps/{app}/acl", list_names)
    r.add_post("/v1/apps/{app}/acl", add_name)
    r.add_delete("/v1/apps/{app}/acl/{name}", remove_name)
