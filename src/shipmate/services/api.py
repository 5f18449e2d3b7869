"""``postgres:*`` / ``redis:*`` routes on the daemon API: ``/v1/services/KIND[/NAME[/...]]``.
Long work streams progress lines; a dump is answered as bytes; an import or a script to run
comes as the request's body (streamed to a scratch file, never held in memory)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from shipmate.errors import ShipmateError, ValidationError
from shipmate.httpapi.server import json_body, lines_of, stream_lines
from shipmate.paas.cancel import stream_deploy
from shipmate.services import jobs, redis_import
from shipmate.services.backups import DEFAULT_KEEP, make_schedule, validate_directory
from shipmate.services.manager import ServiceManager
from shipmate.services.model import kind_of, validate_service_name
from shipmate.spec.names import validate_app_name

_MANAGER: web.AppKey[ServiceManager] = web.AppKey("services")
_CHUNK = 1 << 20


def _args(request: web.Request) -> tuple[ServiceManager, str, str]:
    kind = kind_of(request.match_info["kind"]).name
    name = request.match_info.get("name", "")
    return request.app[_MANAGER], kind, validate_service_name(name) if name else ""


async def list_services(request: web.Request) -> web.Response:
    manager, kind, _ = _args(request)
    return web.json_response(await manager.list(kind))


async def create(request: web.Request) -> web.StreamResponse:
    manager, kind, _ = _args(request)
    body = await json_body(request)
    name, version = str(body.get("name", "")), str(body.get("version") or "")
    validate_service_name(name)
    return await stream_lines(request, lines_of(
        lambda emit: manager.create(kind, name, version, emit)))


async def info(request: web.Request) -> web.Response:
    manager, kind, name = _args(request)
    return web.json_response(await manager.info(kind, name))


async def destroy(request: web.Request) -> web.StreamResponse:
    manager, kind, name = _args(request)
    await manager.state.get(kind, name)
    return await stream_lines(request, lines_of(lambda emit: manager.destroy(kind, name, emit)))


async def restart(request: web.Request) -> web.StreamResponse:
    manager, kind, name = _args(request)
    await manager.state.get(kind, name)
    return await stream_lines(request, lines_of(lambda emit: manager.restart(kind, name, emit)))


async def link(request: web.Request) -> web.StreamResponse:
    manager, kind, name = _args(request)
    body = await json_body(request)
    app, alias = validate_app_name(str(body.get("app", ""))), str(body.get("alias") or "")
    await manager.state.get(kind, name)
    return await stream_deploy(request, manager.paas.running, app,
                               lambda emit: manager.link(kind, name, app, alias, emit))


async def unlink(request: web.Request) -> web.StreamResponse:
    manager, kind, name = _args(request)
    app = validate_app_name(str((await json_body(request)).get("app", "")))
    await manager.state.get(kind, name)
    return await stream_deploy(request, manager.paas.running, app,
                               lambda emit: manager.unlink(kind, name, app, emit))


async def export(request: web.Request) -> web.StreamResponse:
    """The dump as the answer's body (made completely first: a failure is a clean error)."""
    manager, kind, name = _args(request)
    service = await manager.local(kind, name)
    scratch = await asyncio.to_thread(jobs.Scratch, _scratch_root(manager))
    try:
        code, out = await jobs.run_job(manager.require_engine(), service,
                                       jobs.dump_argv(service), scratch)
        size = await asyncio.to_thread(_size, scratch.file)
        if code != 0 or size is None:
            raise ShipmateError(f"export of {name} failed (exit status {code}):\n{out[-2000:]}")
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        resp.content_length = size
        await resp.prepare(request)
        fh = await asyncio.to_thread(open, scratch.file, "rb")
        try:
            while chunk := await asyncio.to_thread(fh.read, _CHUNK):
                await resp.write(chunk)
        finally:
            await asyncio.to_thread(fh.close)
        await resp.write_eof()
        return resp
    finally:
        await asyncio.to_thread(scratch.close)


def _size(path: str) -> int | None:
    return os.path.getsize(path) if os.path.isfile(path) else None


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(_CHUNK):
        yield chunk


def _scratch_root(manager: ServiceManager) -> str:
    return str(manager.config.state_dir / "services" / "scratch")


async def _with_upload(request: web.Request, argv_of: str) -> web.StreamResponse:
    manager, kind, name = _args(request)
    service = await manager.local(kind, name)
    rdb = kind == "redis" and argv_of == "import"
    argv = [] if rdb else (jobs.restore_argv(service) if argv_of == "import"
                           else jobs.connect_argv(service))
    scratch = await asyncio.to_thread(jobs.Scratch, _scratch_root(manager))
    size = await jobs.write_upload(scratch, _body(request))

    async def work(emit: Callable[[str], None]) -> None:
        try:
            if argv_of == "import":
                emit(f"-----> Importing {size} bytes into {name}")
            if rdb:
                keys = await redis_import.import_rdb(manager, service, scratch, emit)
                emit(f"=====> Imported {keys} keys into {name}")
                return
            code, _ = await jobs.run_job(manager.require_engine(), service, argv, scratch,
                                         on_line=emit)
            if code != 0:
                raise ShipmateError(f"{kind}:{argv_of} {name} failed (exit status {code})",
                                    hint="the output above says why")
            if argv_of == "import":
                emit(f"=====> Imported into {name}")
        finally:
            await asyncio.to_thread(scratch.close)

    return await stream_lines(request, lines_of(work))


async def import_(request: web.Request) -> web.StreamResponse:
    return await _with_upload(request, "import")


async def connect(request: web.Request) -> web.StreamResponse:
    return await _with_upload(request, "connect")


async def backup(request: web.Request) -> web.StreamResponse:
    """``KIND:backup NAME DIR``: DIR is a path of the machine whose daemon this is."""
    manager, kind, name = _args(request)
    directory = str((await json_body(request)).get("dir", ""))
    validate_directory(directory)
    await manager.state.get(kind, name)
    return await stream_lines(request, lines_of(
        lambda emit: manager.backup(kind, name, directory, emit)))


async def backup_schedule(request: web.Request) -> web.StreamResponse:
    """``KIND:backup-schedule NAME CRON DIR [--keep N]``."""
    manager, kind, name = _args(request)
    body = await json_body(request)
    cron, directory = str(body.get("cron", "")), str(body.get("dir", ""))
    keep = body.get("keep", DEFAULT_KEEP)
    if not isinstance(keep, int) or isinstance(keep, bool):
        raise ValidationError(f"--keep {keep!r} is not a number")
    make_schedule(cron, directory, keep, 0.0)  # refused before the stream starts
    await manager.state.get(kind, name)
    return await stream_lines(request, lines_of(
        lambda emit: manager.schedule_backups(kind, name, cron, directory, keep, emit)))


async def backup_unschedule(request: web.Request) -> web.StreamResponse:
    manager, kind, name = _args(request)
    await manager.state.get(kind, name)
    return await stream_lines(request, lines_of(
        lambda emit: manager.unschedule_backups(kind, name, emit)))


async def expose(request: web.Request) -> web.StreamResponse:
    manager, kind, name = _args(request)
    port = (await json_body(request)).get("port") or 0
    if not isinstance(port, int) or isinstance(port, bool):
        raise ValidationError(f"Invalid port {port!r}", hint="give a port from 1024 to 65535")
    await manager.state.get(kind, name)
    return await stream_lines(request, lines_of(
        lambda emit: manager.expose(kind, name, port, emit)))


async def unexpose(request: web.Request) -> web.StreamResponse:
    manager, kind, name = _args(request)
    await manager.state.get(kind, name)
    return await stream_lines(request, lines_of(lambda emit: manager.unexpose(kind, name, emit)))


def add_service_routes(app: web.Application, manager: ServiceManager) -> None:
    """Register the service routes, served by ``manager``."""
    app[_MANAGER] = manager
    r = app.router
    base = "/v1/services/{kind}"
    r.add_get(base, list_services)
    r.add_post(base, create)
    r.add_get(base + "/{name}", info)
    r.add_delete(base + "/{name}", destroy)
    r.add_post(base + "/{name}/restart", restart)
    r.add_post(base + "/{name}/link", link)
    r.add_post(base + "/{name}/unlink", unlink)
    r.add_get(base + "/{name}/export", export)
    r.add_post(base + "/{name}/import", import_)
    r.add_post(base + "/{name}/connect", connect)
    r.add_post(base + "/{name}/backup", backup)
    r.add_put(base + "/{name}/backup-schedule", backup_schedule)
    r.add_delete(base + "/{name}/backup-schedule", backup_unschedule)
    r.add_post(base + "/{name}/expose", expose)
    r.add_post(base + "/{name}/unexpose", unexpose)
