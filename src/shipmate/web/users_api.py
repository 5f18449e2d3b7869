"""``/v1/users`` on the daemon's API: ``shipmate users:add|list|remove`` (local only: the
SSH policy refuses these commands over SSH, so only root on the machine manages users)."""

from __future__ import annotations

from aiohttp import web

from shipmate.errors import ValidationError
from shipmate.httpapi.server import json_body
from shipmate.web.users import Users

_USERS: web.AppKey[Users] = web.AppKey("users", Users)


async def list_users(request: web.Request) -> web.Response:
    """``GET /v1/users``: every user, without password hashes."""
    return web.json_response(await request.app[_USERS].list())


async def add_user(request: web.Request) -> web.Response:
    """``POST /v1/users`` ``{"name", "password", "admin"}``."""
    body = await json_body(request)
    name, password, admin = body.get("name"), body.get("password"), body.get("admin", False)
    if not isinstance(name, str) or not isinstance(password, str):
        raise ValidationError("name and password must be strings")
    if not isinstance(admin, bool):
        raise ValidationError("admin must be true or false")
    return web.json_response(await request.app[_USERS].add(name, password, admin), status=201)


async def remove_user(request: web.Request) -> web.Response:
    """``DELETE /v1/users/{name}``."""
    await request.app[_USERS].remove(request.match_info["name"])
    return web.json_response({"removed": True})


def add_users_routes(app: web.Application, users: Users) -> None:
    """Register the ``/v1/users`` routes."""
    app[_USERS] = users
    app.router.add_get("/v1/users", list_users)
    app.router.add_post("/v1/users", add_user)
    app.router.add_delete("/v1/users/{name}", remove_user)
