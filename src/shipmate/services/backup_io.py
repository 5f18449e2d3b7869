"""Backups written to, and pruned from, a directory of this machine (the I/O of
:mod:`.backups`).

A backup is dumped into a private scratch directory inside ``DIR`` (on the same filesystem)
and only then linked into place under its final name, readable by its owner alone: a
backup that failed half-way never shows under a backup's name, and none is overwritten.
"""

from __future__ import annotations

import asyncio
import os

from shipmate.engine.base import Engine
from shipmate.errors import ConflictError, ShipmateError
from shipmate.services import jobs
from shipmate.services.backups import beyond_retention, file_name
from shipmate.services.model import Service


async def write_backup(engine: Engine, service: Service, directory: str, now: float) -> str:
    """Dump ``service`` into ``directory`` (made if missing); the backup's path."""
    scratch = await asyncio.to_thread(jobs.Scratch, directory, ".shipmate-backup-")
    try:
        code, out = await jobs.run_job(engine, service, jobs.dump_argv(service), scratch)
        if code != 0 or not await asyncio.to_thread(os.path.isfile, scratch.file):
            raise ShipmateError(f"backup of {service.name} failed (exit status {code}):\n"
                                f"{out[-2000:]}")
        path = os.path.join(directory, file_name(service, now))
        await asyncio.to_thread(_publish, scratch.file, path)
        return path
    finally:
        await asyncio.to_thread(scratch.close)


def _publish(source: str, path: str) -> None:
    os.chmod(source, 0o600)
    try:
        os.link(source, path)  # never replaces an existing file
    except FileExistsError:
        raise ConflictError(f"a backup named {path} already exists",
                            hint="wait a second and run it again") from None
    fd = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(fd)  # the new name is durable before it is reported
    finally:
        os.close(fd)


async def prune(directory: str, service: Service, keep: int) -> list[str]:
    """Delete the service's oldest backups in ``directory`` beyond the newest ``keep``;
    the names deleted."""
    def run() -> list[str]:
        gone = beyond_retention(service, os.listdir(directory), keep)
        for name in gone:
            os.unlink(os.path.join(directory, name))
        return gone
    return await asyncio.to_thread(run)
