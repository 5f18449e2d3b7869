"""HTTP routes of Dokku's everyday commands beyond a push: ``resource:*``, ``ps:rebuild``,
``apps:rename``/``apps:clone``, ``git:from-image``/``git:load-image``, ``ports:*`` and the
lookup ``enter`` needs. Handlers parse, call one function and answer JSON or stream lines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from shipmate.errors import ValidationError
from shipmate.httpapi.server import json_body
from shipmate.paas import everyday, ports
from shipmate.paas import resources as res
from shipmate.paas.api import flag
from shipmate.paas.cancel import stream_deploy
from shipmate.spec.names import validate_app_name

if TYPE_CHECKING:
    from shipmate.paas.service import Paas

_PAAS: web.AppKey[Paas] = web.AppKey("paas-dokku")


def _paas(request: web.Request) -> Paas:
    return request.app[_PAAS]


def _app(request: web.Request) -> str:
    return validate_app_name(request.match_info["app"])


# resources ---------------------------------------------------------------------------------

async def get_resources(request: web.Request) -> web.Response:
    paas, app = _paas(request), _app(request)
    await paas.state.get_app(app)
    record = await res.ResourceSettings(paas.store).get(app)
    current = await paas.state.current(app)
    procs = sorted(set(current.processes if current else ()) | {
        p for kind in record.values() for p in kind})
    return web.json_response({"record": record, "report": res.report(record, procs)})


async def post_resources(request: web.Request) -> web.Response:
    paas, app, body = _paas(request), _app(request), await json_body(request)
    await paas.state.get_app(app)
    values = body.get("set") or {}
    if not isinstance(values, dict):
        raise ValidationError("set must map memory/cpu to values")
    settings = res.ResourceSettings(paas.store)
    record = res.changed(await settings.get(app), str(body.get("kind", "")),
                         str(body.get("process_type") or res.DEFAULT),
                         res.parse_values(values), clear=flag(body, "clear", False))
    await settings.put(app, record)
    return web.json_response({"record": record})


# rebuild, rename, clone, images -----------------------------------------------------------------

async def rebuild(request: web.Request) -> web.StreamResponse:
    paas, app = _paas(request), _app(request)
    await paas.state.get_app(app)
    return await stream_deploy(request, paas.running, app,
                               lambda emit: everyday.rebuild(paas, app, emit))


async def rename(request: web.Request) -> web.StreamResponse:
    paas, app, body = _paas(request), _app(request), await json_body(request)
    new = validate_app_name(str(body.get("name", "")))
    deploy = not flag(body, "skip_deploy", False)
    await paas.state.get_app(app)
    return await stream_deploy(request, paas.running, new,
                               lambda emit: everyday.rename(paas, app, new, emit,
                                                            deploy=deploy))


async def clone(request: web.Request) -> web.StreamResponse:
    paas, app, body = _paas(request), _app(request), await json_body(request)
    new = validate_app_name(str(body.get("name", "")))
    deploy = not flag(body, "skip_deploy", False)
    await paas.state.get_app(app)
    return await stream_deploy(request, paas.running, new,
                               lambda emit: everyday.clone(paas, app, new, emit, deploy=deploy))


async def from_image(request: web.Request) -> web.StreamResponse:
    paas, app, body = _paas(request), _app(request), await json_body(request)
    image = _image_name(body.get("image"))
    await paas.state.get_app(app)
    return await stream_deploy(request, paas.running, app,
                               lambda emit: everyday.from_image(paas, app, image, emit))


async def load_image(request: web.Request) -> web.StreamResponse:
    """The body is a ``docker save`` tar, read as it arrives."""
    paas, app = _paas(request), _app(request)
    image = _image_name(request.query.get("image"))
    await paas.state.get_app(app)
    limit = paas.config.build_max_image_bytes

    async def chunks() -> AsyncIterator[bytes]:
        total = 0
        async for chunk in request.content.iter_chunked(2**20):
            total += len(chunk)
            if total > limit:
                raise ValidationError(f"the image stream is larger than "
                                      f"build_max_image_bytes ({limit // 2**20} MiB)")
            yield chunk

    return await stream_deploy(request, paas.running, app,
                               lambda emit: everyday.load_image(paas, app, image, chunks(),
                                                                emit))


def _image_name(value: Any) -> str:
    text = str(value or "")
    if not text or len(text) > 255 or any(c.isspace() or c in "\0\"'`$\\" for c in text) \
            or text.startswith("-"):
        raise ValidationError(f"Invalid image name {text!r}",
                              hint="name an image as docker does: repository[:tag] or an ID")
    return text


# ports ------------------------------------------------------------------------------------------

async def get_ports(request: web.Request) -> web.Response:
    paas, app = _paas(request), _app(request)
    return web.json_response(await ports.report(paas, app))


async def post_ports(request: web.Request) -> web.StreamResponse:
    paas, app, body = _paas(request), _app(request), await json_body(request)
    await paas.state.get_app(app)
    return await stream_deploy(request, paas.running, app,
                               lambda emit: ports.change(paas, app, body, emit))


def add_dokku_routes(app: web.Application, paas: Paas) -> None:
    """Register the routes of this module, served by ``paas``."""
    app[_PAAS] = paas
    r = app.router
    r.add_get("/v1/apps/{app}/resources", get_resources)
    r.add_post("/v1/apps/{app}/resources", post_resources)
    r.add_post("/v1/apps/{app}/rebuild", rebuild)
    r.add_post("/v1/apps/{app}/rename", rename)
    r.add_post("/v1/apps/{app}/clone", clone)
    r.add_post("/v1/apps/{app}/from-image", from_image)
    r.add_post("/v1/apps/{app}/load-image", load_image)
    r.add_get("/v1/apps/{app}/ports", get_ports)
    r.add_post("/v1/apps/{app}/ports", post_ports)
