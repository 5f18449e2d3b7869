"""``storage:*`` routes on the daemon API. ``remote`` in a body says the command came over
SSH: then only directories of the storage root are accepted (:mod:`.storage_rules`)."""

from __future__ import annotations

from aiohttp import web

from shipmate.httpapi.server import json_body, lines_of, stream_lines
from shipmate.paas.api import flag
from shipmate.paas.storage import Storage
from shipmate.spec.names import validate_app_name

_STORAGE: web.AppKey[Storage] = web.AppKey("storage")


def _app(request: web.Request) -> str:
    return validate_app_name(request.match_info["app"])


async def ensure_directory(request: web.Request) -> web.StreamResponse:
    storage, body = request.app[_STORAGE], await json_body(request)
    name, chown = str(body.get("name", "")), str(body.get("chown", "herokuish"))
    return await stream_lines(request, lines_of(
        lambda emit: storage.ensure_directory(name, chown, emit)))


async def list_mounts(request: web.Request) -> web.Response:
    storage, app = request.app[_STORAGE], _app(request)
    mounts = await storage.list(app)
    return web.json_response({"mounts": [m.to_json() for m in mounts],
                              "report": await storage.report(app)})


async def mount(request: web.Request) -> web.Response:
    storage, app, body = request.app[_STORAGE], _app(request), await json_body(request)
    new = await storage.mount(app, str(body.get("mount", "")),
                              remote=flag(body, "remote", False))
    return web.json_response(new.to_json(), status=201)


async def unmount(request: web.Request) -> web.Response:
    storage, app, body = request.app[_STORAGE], _app(request), await json_body(request)
    gone = await storage.unmount(app, str(body.get("mount", "")),
                                 remote=flag(body, "remote", False))
    return web.json_response(gone.to_json())


def add_storage_routes(app: web.Application, storage: Storage) -> None:
    """Register the ``storage:*`` routes, served by ``storage``."""
    app[_STORAGE] = storage
    r = app.router
    r.add_post("/v1/storage/directories", ensure_directory)
    r.add_get("/v1/apps/{app}/storage", list_mounts)
    r.add_post("/v1/apps/{app}/storage", mount)
    r.add_post("/v1/apps/{app}/storage/unmount", unmount)
