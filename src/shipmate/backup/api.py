"""``backup create`` and ``backup restore`` on the daemon API: ``POST /v1/backup/create``
and ``POST /v1/backup/restore`` with ``{"path": "/abs/file"}`` (and ``"force"`` for a
restore), both streaming progress lines. The paths are the server's: these routes serve the
local CLI only (``backup`` is local-only over SSH, :mod:`shipmate.paas.sshpolicy`)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from shipmate.backup.create import BackupMaker, check_destination
from shipmate.backup.restore import Restorer
from shipmate.errors import ValidationError
from shipmate.httpapi.server import json_body, lines_of, stream_lines

_MAKER: web.AppKey[BackupMaker] = web.AppKey("backup-maker")
_RESTORER: web.AppKey[Restorer] = web.AppKey("backup-restorer")


def _path(body: dict[str, object]) -> Path:
    raw = body.get("path")
    if not isinstance(raw, str) or not raw.startswith("/") or "\0" in raw:
        raise ValidationError("the archive's path must be an absolute path",
                              hint="the CLI sends it resolved: `shipmate backup create FILE`")
    return Path(raw)


async def create(request: web.Request) -> web.StreamResponse:
    """Write a backup archive to ``path`` on this machine."""
    dest = check_destination(_path(await json_body(request)))
    maker = request.app[_MAKER]
    return await stream_lines(request, lines_of(lambda emit: maker.create(dest, emit)))


async def restore(request: web.Request) -> web.StreamResponse:
    """Restore the platform from the archive at ``path``."""
    body = await json_body(request)
    path, force = _path(body), body.get("force") is True
    restorer = request.app[_RESTORER]
    if not force:
        await restorer.check_fresh()  # refused before the stream starts: a plain error
    return await stream_lines(request, lines_of(
        lambda emit: restorer.restore(path, force, emit)))


def add_backup_routes(app: web.Application, maker: BackupMaker, restorer: Restorer) -> None:
    """Register the backup routes."""
    app[_MAKER], app[_RESTORER] = maker, restorer
    app.router.add_post("/v1/backup/create", create)
    app.router.add_post("/v1/backup/restore", restore)
