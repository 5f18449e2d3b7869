"""HTTP routes of ``certs:*`` and ``letsencrypt:*`` on the daemon API. Handlers parse, call
one :class:`~shipmate.paas.certs.Certs` or :class:`~shipmate.paas.letsencrypt.LetsEncrypt`
method and answer JSON, or stream progress lines for an issuance."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from shipmate.errors import ValidationError
from shipmate.httpapi.server import json_body, lines_of, stream_lines
from shipmate.paas.certs import Certs, decode_pem_body
from shipmate.spec.names import validate_app_name

if TYPE_CHECKING:
    from shipmate.paas.letsencrypt import LetsEncrypt

_CERTS: web.AppKey[Certs] = web.AppKey("certs")
_LE: web.AppKey[LetsEncrypt] = web.AppKey("letsencrypt")


def _app(request: web.Request) -> str:
    return validate_app_name(request.match_info["app"])


async def get_certs(request: web.Request) -> web.Response:
    return web.json_response(await request.app[_CERTS].report(_app(request)))


async def put_certs(request: web.Request) -> web.Response:
    certs, app = request.app[_CERTS], _app(request)
    given = decode_pem_body(await json_body(request))
    if isinstance(given, bytes):
        return web.json_response(await certs.add_tar(app, given))
    return web.json_response(await certs.add(app, *given))


async def generate(request: web.Request) -> web.Response:
    body = await json_body(request)
    domains = body.get("domains") or []
    if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
        raise ValidationError("domains must be a list of names")
    return web.json_response(await request.app[_CERTS].generate(_app(request), domains))


async def show(request: web.Request) -> web.Response:
    pem = await request.app[_CERTS].show(_app(request), request.match_info["part"])
    return web.json_response({"pem": pem})


async def delete_certs(request: web.Request) -> web.Response:
    await request.app[_CERTS].remove(_app(request))
    return web.json_response({"removed": True})


async def set_option(request: web.Request) -> web.Response:
    body = await json_body(request)
    name, value = body.get("name"), body.get("value")
    if not isinstance(name, str) or not isinstance(value, str):
        raise ValidationError("give name and value")
    return web.json_response(await request.app[_CERTS].set_option(_app(request), name, value))


# letsencrypt --------------------------------------------------------------------------------

async def le_enable(request: web.Request) -> web.StreamResponse:
    le, app = request.app[_LE], _app(request)
    await le.certs.check_target(app)
    return await stream_lines(request, lines_of(lambda emit: le.enable(app, emit)))


async def le_disable(request: web.Request) -> web.Response:
    await request.app[_LE].disable(_app(request))
    return web.json_response({"disabled": True})


async def le_revoke(request: web.Request) -> web.StreamResponse:
    le, app = request.app[_LE], _app(request)
    return await stream_lines(request, lines_of(lambda emit: le.revoke(app, emit)))


async def le_list(request: web.Request) -> web.Response:
    return web.json_response(await request.app[_LE].listing())


async def le_auto_renew(request: web.Request) -> web.StreamResponse:
    le, body = request.app[_LE], await json_body(request)
    app = body.get("app")
    apps = [validate_app_name(app)] if isinstance(app, str) and app else None
    return await stream_lines(request, lines_of(lambda emit: le.renew_due(emit, apps)))


async def le_get_settings(request: web.Request) -> web.Response:
    return web.json_response(await request.app[_LE].settings_report())


async def le_set(request: web.Request) -> web.Response:
    body = await json_body(request)
    name, value = body.get("name"), body.get("value", "")
    if not isinstance(name, str) or not isinstance(value, str):
        raise ValidationError("give name and value")
    return web.json_response(await request.app[_LE].set_global(name, value))


def add_certs_routes(app: web.Application, certs: Certs, le: LetsEncrypt | None) -> None:
    """Register the certs (and, with ``le``, letsencrypt) routes."""
    app[_CERTS] = certs
    r = app.router
    r.add_get("/v1/apps/{app}/certs", get_certs)
    r.add_put("/v1/apps/{app}/certs", put_certs)
    r.add_delete("/v1/apps/{app}/certs", delete_certs)
    r.add_post("/v1/apps/{app}/certs/generate", generate)
    r.add_post("/v1/apps/{app}/certs/options", set_option)
    r.add_get("/v1/apps/{app}/certs/{part}", show)
    if le is None:
        return
    app[_LE] = le
    r.add_post("/v1/apps/{app}/letsencrypt", le_enable)
    r.add_delete("/v1/apps/{app}/letsencrypt", le_disable)
    r.add_post("/v1/apps/{app}/letsencrypt/revoke", le_revoke)
    r.add_get("/v1/letsencrypt", le_list)
    r.add_post("/v1/letsencrypt/auto-renew", le_auto_renew)
    r.add_get("/v1/letsencrypt/settings", le_get_settings)
    r.add_post("/v1/letsencrypt/settings", le_set)
