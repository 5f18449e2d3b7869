"""The two restore steps that need the engine: services (started, with their data loaded)
and apps (rebuilt from their repositories and deployed as the release they were at).

A service's dump is loaded the way it was made: a Postgres dump with ``pg_restore`` into the
running service (as ``postgres:import`` does); a Redis RDB is put in the service's volume
*before* the service first starts, by a one-off server that loads it and writes it out as
the append-only file the service reads (a Redis that runs with ``appendonly yes`` ignores an
RDB on its own).

An app's current release is rebuilt from the repository at the release's commit, its record
gets the new image, and the deployer runs that release again: the release number, config,
formation, domains, ports and checks are those in the store. The release phase and
``predeploy`` are not run again (the data is the backup's, migrated already). Older
releases keep their records, whose images this machine does not have.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path

from shipmate.config import Config
from shipmate.errors import ShipmateError
from shipmate.paas import build as builder
from shipmate.paas.gitserver import repo_path
from shipmate.paas.sandbox import BuildSandbox
from shipmate.paas.service import Paas
from shipmate.paas.state import app_key
from shipmate.services import jobs
from shipmate.services.manager import ServiceManager
from shipmate.services.model import Service
from shipmate.services.state import service_key
from shipmate.spec.container import Mount, make_spec
from shipmate.store.base import Store

Emit = Callable[[str], None]

# Runs as root in a one-off container of the Redis image with the service's volume at /data
# and the dump at /dump/dump: load the RDB, rewrite it as the append-only file, hand the
# files to the redis user.
REDIS_SEED = """set -e
rm -rf /data/appendonlydir /data/dump.rdb
cp /dump/dump /data/dump.rdb
redis-server --dir /data --daemonize yes --appendonly no --save '' --port 6379
i=0; until redis-cli ping >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 300 ] && exit 3; sleep 0.1; done
redis-cli config set appendonly yes >/dev/null
i=0; until redis-cli info persistence | grep -q 'aof_rewrite_in_progress:0' \
  && redis-cli info persistence | grep -q 'aof_rewrite_scheduled:0' \
  && [ -f /data/appendonlydir/appendonly.aof.manifest ]; do
  i=$((i+1)); [ $i -gt 3000 ] && exit 4; sleep 0.1; done
echo "keys loaded: $(redis-cli dbsize)"
redis-cli shutdown nosave >/dev/null 2>&1 || true
rm -f /data/dump.rdb
chown -R redis:redis /data
"""


class ServiceRestorer:
    """Starts a service of the archive on this machine and loads its dump."""

    def __init__(self, store: Store, config: Config, services: ServiceManager) -> None:
        self.store, self.config, self.services = store, config, services

    async def restore(self, service: Service, dump: Path | None, emit: Emit) -> list[str]:
        """Restore one service; what could not be restored (empty when all was)."""
        label = f"{service.kind}:{service.name}"
        service = dataclasses.replace(service, machine=str(self.config.machine_id))
        try:
            emit(f"-----> Restoring {label}")
            await self.store.put(service_key(service.kind, service.name), service.to_json())
            await self.services.ensure_image(service.spec, service.version, emit)
            if dump is not None and service.kind == "redis":
                await self._seed_redis(service, dump, emit)
            await self.services.registry.submit(service.unit, _unit(service))
            await self.services.registry.set_desired(service.unit, "launched")
            await self.services.wait_ready(service)
            if dump is not None and service.kind == "postgres":
                await self._pg_restore(service, dump, emit)
        except ShipmateError as exc:
            emit(f" !     {label}: {exc}")
            return [f"{label}: {str(exc).splitlines()[0]}"]
        if dump is None:
            emit(f"       {label} has no dump in the archive: it starts empty")
            return [f"{label}: no dump in the archive (started empty)"]
        emit(f"=====> {label} restored with its data")
        return []

    async def _pg_restore(self, service: Service, dump: Path, emit: Emit) -> None:
        scratch = await asyncio.to_thread(jobs.Scratch, self._scratch_root())
        try:
            await asyncio.to_thread(_copy, dump, Path(scratch.file))
            code, out = await jobs.run_job(self.services.require_engine(), service,
                                           jobs.restore_argv(service), scratch)
        finally:
            await asyncio.to_thread(scratch.close)
        if code != 0:
            raise ShipmateError(f"pg_restore failed (exit status {code}): {out[-300:]}")
        emit(f"       Dump loaded into {service.name}")

    async def _seed_redis(self, service: Service, dump: Path, emit: Emit) -> None:
        engine = self.services.require_engine()
        scratch = await asyncio.to_thread(jobs.Scratch, self._scratch_root())
        try:
            await asyncio.to_thread(_copy, dump, Path(scratch.file))
            spec = make_spec(f"{service.container}-seed-{secrets.token_hex(3)}",
                             service.spec.image(service.version),
                             command=["/bin/sh", "-c", REDIS_SEED], user="0",
                             mounts=[Mount("/dump", scratch.path),
                                     Mount(service.spec.data_dir, service.volume)],
                             labels={jobs.JOB_LABEL: f"{service.kind}:{service.name}"})
            cid = await engine.create(spec)
            try:
                await engine.start(cid)
                code = await engine.wait(cid)
                lines = [line async for line in engine.logs(cid)]
            finally:
                with contextlib.suppress(ShipmateError):
                    await engine.remove(cid, force=True)
        finally:
            await asyncio.to_thread(scratch.close)
        if code != 0:
            raise ShipmateError(f"loading the RDB failed (exit status {code}): "
                                + " ".join(lines[-5:]))
        emit(f"       {lines[-1] if lines else 'RDB loaded'}")

    def _scratch_root(self) -> str:
        return str(Path(self.config.state_dir) / "services" / "scratch")


def _unit(service: Service) -> str:
    from shipmate.services.model import unit_text

    return unit_text(service)


def _copy(src: Path, dest: Path) -> None:
    import shutil

    shutil.copyfile(src, dest)


class AppRebuilder:
    """Rebuilds an app's current release from its repository and deploys it."""

    def __init__(self, store: Store, config: Config, paas: Paas) -> None:
        self.store, self.config, self.paas = store, config, paas

    async def rebuild(self, app: str, version: int, emit: Emit) -> list[str]:
        """Rebuild and deploy ``app`` as release ``version``; what failed (empty: none)."""
        try:
            release = await self.paas.state.release(app, version)
            emit(f"-----> Rebuilding {app} {release.label} from commit {release.git_rev[:7]}")
            tar = await asyncio.to_thread(self._tree, app, release.git_rev)
            engine = self.paas.require_engine()
            network, buildargs = await BuildSandbox(engine, self.config).settings()
            result = await builder.build(engine, app, release.git_rev, tar, emit,
                                         buildargs=buildargs, network=network,
                                         limits=builder.BuildLimits.from_config(self.config))
            release = dataclasses.replace(release, image=result.image)
            await self.store.put(app_key(app, f"releases/{version:06d}"), release.to_json())
            await self.paas.deployer.deploy(app, release, emit)
        except ShipmateError as exc:
            emit(f" !     {app}: {str(exc).splitlines()[0]}")
            return [f"{app}: {str(exc).splitlines()[0]}"]
        emit(f"=====> {app} restored as {release.label}")
        return []

    def _tree(self, app: str, rev: str) -> bytes:
        repo = repo_path(self.config.state_dir, app)
        if not rev or not (repo / "HEAD").exists():
            raise ShipmateError(f"no repository holds the commit of its current release "
                                f"({rev[:7] or 'none: made from an image'})",
                                hint="push the app again, or git:from-image the image")
        res = subprocess.run(["git", "--git-dir", str(repo), "archive", "--format=tar", rev],
                             capture_output=True)
        if res.returncode != 0:
            raise ShipmateError(f"commit {rev[:7]} is not in its repository: "
                                f"{res.stderr.decode(errors='replace').strip()[-200:]}")
        return res.stdout
