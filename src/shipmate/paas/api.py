"""The PaaS's HTTP routes on the daemon API. Handlers parse, call one :class:`Paas` method and
answer JSON, or stream progress lines for long work."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from shipmate.errors import ValidationError
from shipmate.httpapi.server import json_body, lines_of, stream_lines
from shipmate.paas.cancel import stream_deploy
from shipmate.paas.model import validate_config_key
from shipmate.spec.names import validate_app_name

if TYPE_CHECKING:
    from shipmate.paas.service import Paas


_PAAS: web.AppKey[Paas] = web.AppKey("paas")


def _paas(request: web.Request) -> Paas:
    return request.app[_PAAS]


def _app(request: web.Request) -> str:
    return validate_app_name(request.match_info["app"])


def str_list(body: dict[str, Any], key: str) -> list[str]:
    """``body[key]`` as a list of strings (missing: empty), or a 400 saying so."""
    value = body.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError(f"{key} must be a list of strings")
    return value


def flag(body: dict[str, Any], key: str, default: bool) -> bool:
    """``body[key]`` as a boolean (missing: ``default``), or a 400 saying so."""
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise ValidationError(f"{key} must be true or false")
    return value


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


async def list_apps(request: web.Request) -> web.Response:
    apps = await _paas(request).state.list_apps()
    return web.json_response([{"name": a.name, "locked": a.locked, "created": _iso(a.created)}
                              for a in apps])


async def create_app(request: web.Request) -> web.Response:
    body = await json_body(request)
    app = await _paas(request).state.create_app(str(body.get("name", "")))
    return web.json_response({"name": app.name}, status=201)


async def app_exists(request: web.Request) -> web.Response:
    return web.json_response({"exists": await _paas(request).state.exists(_app(request))})


async def app_report(request: web.Request) -> web.Response:
    return web.json_response(await _paas(request).report(_app(request)))


async def destroy_app(request: web.Request) -> web.StreamResponse:
    paas, app = _paas(request), _app(request)
    await paas.state.get_app(app)
    return await stream_lines(request, lines_of(lambda emit: paas.destroy(app, emit)))


async def lock(request: web.Request) -> web.Response:
    await _paas(request).state.set_locked(_app(request), True)
    return web.json_response({"locked": True})


async def unlock(request: web.Request) -> web.Response:
    await _paas(request).state.set_locked(_app(request), False)
    return web.json_response({"locked": False})


async def get_config(request: web.Request) -> web.Response:
    return web.json_response(await _paas(request).state.config(_app(request)))


async def patch_config(request: web.Request) -> web.StreamResponse:
    paas, app, body = _paas(request), _app(request), await json_body(request)
    set_ = body.get("set") or {}
    unset = str_list(body, "unset")
    if not isinstance(set_, dict) or not all(isinstance(v, str) for v in set_.values()):
        raise ValidationError("set must map config keys to string values")
    for key in [*set_, *unset]:
        validate_config_key(str(key))
    await paas.state.get_app(app)
    restart = flag(body, "restart", True)
    return await stream_deploy(request, paas.running, app,
                               lambda emit: paas.change_config(app, set_, tuple(unset),
                                                               restart, emit))


async def put_global_domain(request: web.Request) -> web.Response:
    body = await json_body(request)
    domain = await _paas(request).state.set_global_domain(str(body.get("domain", "")))
    return web.json_response({"domain": domain})


async def delete_global_domain(request: web.Request) -> web.Response:
    state = _paas(request).state
    ports = await state.clear_global_domain()
    return web.json_response({"domain": await state.global_domain(), "ports": ports})


def _routing(request: web.Request, app: str) -> str:
    """Why this machine's router leaves the app out ('' when it routes it)."""
    router = _paas(request).router
    why = router.excluded.get(app, "") if router is not None else ""
    return f"left out by the router: {why}" if why else "routed"


async def get_domains(request: web.Request) -> web.Response:
    app = _app(request)
    report = await _paas(request).domains_report(app)
    return web.json_response({**report, "routing": _routing(request, app)})


async def post_domains(request: web.Request) -> web.Response:
    paas, app, body = _paas(request), _app(request), await json_body(request)
    add, remove = body.get("add", []), body.get("remove", [])
    if not isinstance(add, list) or not isinstance(remove, list):
        raise ValidationError("add and remove must be lists of domains")
    await paas.state.change_domains(app, [str(d) for d in add], [str(d) for d in remove])
    return web.json_response(await paas.domains_report(app))


async def get_formation(request: web.Request) -> web.Response:
    return web.json_response(await _paas(request).state.formation(_app(request)))


async def scale(request: web.Request) -> web.StreamResponse:
    paas, app, body = _paas(request), _app(request), await json_body(request)
    formation = body.get("formation")
    if not isinstance(formation, dict):
        raise ValidationError("formation must map process types to counts")
    await paas.state.get_app(app)
    return await stream_deploy(request, paas.running, app,
                               lambda emit: paas.scale(app, formation, emit))


async def ps(request: web.Request) -> web.Response:
    app = _app(request)
    report = await _paas(request).ps(app)
    return web.json_response({**report, "routing": _routing(request, app)})


async def restart(request: web.Request) -> web.StreamResponse:
    paas, app = _paas(request), _app(request)
    await paas.state.get_app(app)
    return await stream_deploy(request, paas.running, app,
                               lambda emit: paas.restart(app, emit))


async def stop(request: web.Request) -> web.StreamResponse:
    paas, app = _paas(request), _app(request)
    await paas.state.get_app(app)
    return await stream_lines(request, lines_of(lambda emit: paas.stop(app, emit)))


async def start(request: web.Request) -> web.StreamResponse:
    paas, app = _paas(request), _app(request)
    await paas.state.get_app(app)
    return await stream_lines(request, lines_of(lambda emit: paas.start(app, emit)))


async def releases(request: web.Request) -> web.Response:
    paas, app = _paas(request), _app(request)
    current = await paas.state.current(app)
    return web.json_response([
        {"version": r.version, "created_at": _iso(r.created), "git_rev": r.git_rev,
         "image": r.image, "description": r.description, "timings": dict(r.timings),
         "current": current is not None and current.version == r.version}
        for r in await paas.state.releases(app)])


async def rollback(request: web.Request) -> web.StreamResponse:
    paas, app, body = _paas(request), _app(request), await json_body(request)
    version = body.get("version")
    if not isinstance(version, int):
        raise ValidationError("version must be a release number")
    await paas.state.release(app, version)
    return await stream_deploy(request, paas.running, app,
                               lambda emit: paas.rollback(app, version, emit))


async def get_checks(request: web.Request) -> web.Response:
    return web.json_response(await _paas(request).state.checks(_app(request)))


async def post_checks(request: web.Request) -> web.Response:
    paas, app, body = _paas(request), _app(request), await json_body(request)
    return web.json_response(await paas.change_checks(app, body))


async def logs(request: web.Request) -> web.StreamResponse:
    paas, app, body = _paas(request), _app(request), await json_body(request)
    num = body.get("num", 100)
    if not isinstance(num, int) or isinstance(num, bool) or not 0 <= num <= 100_000:
        raise ValidationError("num must be a number of lines from 0 to 100000")
    process = body.get("process", "")
    if not isinstance(process, str):
        raise ValidationError("process must be a process type such as web")
    await paas.state.get_app(app)
    return await stream_lines(request, paas.logs(app, num, flag(body, "follow", False),
                                                 process))


async def run(request: web.Request) -> web.StreamResponse:
    paas, app, body = _paas(request), _app(request), await json_body(request)
    command = body.get("command")
    if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
        raise ValidationError("command must be a list of strings")
    await paas.state.get_app(app)
    return await stream_lines(request, paas.run(app, command))


async def build(request: web.Request) -> web.StreamResponse:
    """A push: the git hook sends the tree of the pushed revision as a tar body."""
    paas, app = _paas(request), validate_app_name(request.match_info["app"])
    rev = request.query.get("rev", "")
    tar = await read_push(request, paas.config.push_max_bytes)
    return await stream_deploy(request, paas.running, app,
                               lambda emit: paas.push(app, rev, tar, emit))


async def read_push(request: web.Request, limit: int) -> bytes:
    """The pushed tree's tar body, refused past ``push_max_bytes`` with a message that names
    the setting (the API's own body limit would give a bare 413)."""
    too_big = ValidationError(f"the pushed tree is larger than push_max_bytes "
                              f"({limit // 2**20} MiB)",
                              hint="raise push_max_bytes (SHIPMATE_PUSH_MAX_BYTES) on the server")
    if request.content_length is not None and request.content_length > limit:
        raise too_big
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.content.iter_chunked(2**20):
        total += len(chunk)
        if total > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


async def list_keys(request: web.Request) -> web.Response:
    return web.json_response(await _paas(request).keys.list())


async def add_key(request: web.Request) -> web.Response:
    body = await json_body(request)
    rec: dict[str, Any] = await _paas(request).keys.add(
        str(body.get("name", "")), str(body.get("key", "")), admin=flag(body, "admin", False))
    return web.json_response(rec, status=201)


async def remove_key(request: web.Request) -> web.Response:
    await _paas(request).keys.remove(request.match_info["name"])
    return web.json_response({"removed": True})


def add_paas_routes(app: web.Application, paas: Paas) -> None:
    """Register every PaaS route, served by ``paas``."""
    app[_PAAS] = paas
    r = app.router
    r.add_get("/v1/apps", list_apps)
    r.add_post("/v1/apps", create_app)
    r.add_get("/v1/apps/{app}", app_report)
    r.add_delete("/v1/apps/{app}", destroy_app)
    r.add_get("/v1/apps/{app}/exists", app_exists)
    r.add_post("/v1/apps/{app}/lock", lock)
    r.add_post("/v1/apps/{app}/unlock", unlock)
    r.add_get("/v1/apps/{app}/config", get_config)
    r.add_patch("/v1/apps/{app}/config", patch_config)
    r.add_put("/v1/domains/global", put_global_domain)
    r.add_delete("/v1/domains/global", delete_global_domain)
    r.add_get("/v1/apps/{app}/domains", get_domains)
    r.add_post("/v1/apps/{app}/domains", post_domains)
    r.add_get("/v1/apps/{app}/formation", get_formation)
    r.add_post("/v1/apps/{app}/scale", scale)
    r.add_get("/v1/apps/{app}/ps", ps)
    r.add_post("/v1/apps/{app}/restart", restart)
    r.add_post("/v1/apps/{app}/stop", stop)
    r.add_post("/v1/apps/{app}/start", start)
    r.add_get("/v1/apps/{app}/releases", releases)
    r.add_post("/v1/apps/{app}/rollback", rollback)
    r.add_get("/v1/apps/{app}/checks", get_checks)
    r.add_post("/v1/apps/{app}/checks", post_checks)
    r.add_post("/v1/apps/{app}/logs", logs)
    r.add_post("/v1/apps/{app}/run", run)
    r.add_post("/v1/apps/{app}/builds", build)
    r.add_get("/v1/ssh-keys", list_keys)
    r.add_post("/v1/ssh-keys", add_key)
    r.add_delete("/v1/ssh-keys/{name}", remove_key)
    from shipmate.paas.api_dokku import add_dokku_routes  # it imports this module's helpers

    add_dokku_routes(app, paas)
