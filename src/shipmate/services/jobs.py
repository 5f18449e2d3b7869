"""Work done *next to* a running service: dumps, restores and SQL/commands from a file, each
in a one-off container of the service's image on the service's network, with a scratch
directory of this machine mounted at ``/dump``. The service's own container is never
entered or changed; the data only ever goes through the server's protocol.

``pg_dump -Fc`` (the custom format dokku-postgres uses) and ``pg_restore --clean
--if-exists --no-owner --no-acl``; for Redis, ``redis-cli --rdb`` makes an RDB snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence

from shipmate.engine.base import Engine
from shipmate.errors import ShipmateError, ValidationError
from shipmate.services.model import Service
from shipmate.spec.container import Mount, make_spec

DUMP = "dump"  # the file name under /dump
JOB_LABEL = "shipmate.service-job"


def dump_argv(service: Service) -> list[str]:
    """The command that writes the service's dump to ``/dump/dump``."""
    if service.kind == "redis":
        return ["redis-cli", "--no-auth-warning", "-h", service.container, "-a",
                service.password, "--rdb", f"/dump/{DUMP}"]
    return ["pg_dump", "-Fc", "--no-owner", "--no-acl", "-h", service.container, "-U",
            "postgres", "-d", service.database, "-f", f"/dump/{DUMP}"]


def restore_argv(service: Service) -> list[str]:
    """The command that loads ``/dump/dump`` into the service."""
    if service.kind == "redis":
        raise ValidationError("a Redis dump is not restored through the server",
                              hint="redis_import.import_rdb replaces the data files")
    return ["pg_restore", "--clean", "--if-exists", "--no-owner", "--no-acl", "--exit-on-error",
            "-h", service.container, "-U", "postgres", "-d", service.database, f"/dump/{DUMP}"]


def connect_argv(service: Service) -> list[str]:
    """The command that runs the statements (commands) in ``/dump/dump`` and prints the
    answers."""
    if service.kind == "redis":
        return ["/bin/sh", "-c", f'exec redis-cli --no-auth-warning -h {service.container} '
                f'-a "$REDISCLI_AUTH" < /dump/{DUMP}']
    return ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-h", service.container, "-U", "postgres",
            "-d", service.database, "-f", f"/dump/{DUMP}"]


class Scratch:
    """A private directory of this machine for one job (removed by :meth:`close`)."""

    def __init__(self, root: str, prefix: str = "job-") -> None:
        os.makedirs(root, mode=0o700, exist_ok=True)
        self.path = tempfile.mkdtemp(prefix=prefix, dir=root)

    @property
    def file(self) -> str:
        """The dump's path on this machine."""
        return os.path.join(self.path, DUMP)

    def close(self) -> None:
        """Remove the directory and what is in it."""
        shutil.rmtree(self.path, ignore_errors=True)


async def run_job(engine: Engine, service: Service, argv: list[str], scratch: Scratch,
                  on_line: Callable[[str], None] | None = None,
                  mounts: Sequence[Mount] = ()) -> tuple[int, str]:
    """Run ``argv`` in a one-off container beside ``service`` (with ``mounts`` besides the
    scratch directory); (exit code, output)."""
    spec = make_spec(f"{service.container}-job-{secrets.token_hex(3)}",
                     service.spec.image(service.version), command=argv,
                     env={"PGPASSWORD": service.password, "REDISCLI_AUTH": service.password},
                     mounts=[Mount("/dump", scratch.path), *mounts], network=service.network,
                     labels={JOB_LABEL: f"{service.kind}:{service.name}"}, user="0")
    cid = await engine.create(spec)
    lines: list[str] = []
    try:
        await engine.start(cid)
        code = await engine.wait(cid)
        async for line in engine.logs(cid):
            lines.append(line)
            if on_line is not None:
                on_line(line)
    finally:
        with contextlib.suppress(ShipmateError):
            await engine.remove(cid, force=True)
    return code, "\n".join(lines)


async def write_upload(scratch: Scratch, chunks: AsyncIterator[bytes]) -> int:
    """Write an upload to the scratch dump file; its size."""
    size = 0
    fh = await asyncio.to_thread(open, scratch.file, "wb")
    try:
        async for chunk in chunks:
            size += len(chunk)
            await asyncio.to_thread(fh.write, chunk)
    finally:
        await asyncio.to_thread(fh.close)
    return size
