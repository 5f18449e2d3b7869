"""Making a backup on the daemon: read the store once, bundle every app's repository, copy
the cluster CA, dump the services that run here, copy the storage root's directories
(:mod:`.storage`), then write the archive (:mod:`.archive`).

What cannot be put in (a service that runs on another machine, a dump that fails, an app
never pushed) is said as it happens and listed in the manifest's ``notes``; the archive is
still made, since a partial backup beats none. The archive is written next to its final
name and renamed into place once complete.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from shipmate import __version__
from shipmate.backup import archive, storage
from shipmate.backup.manifest import CA, HOST_KEY, REPOS, SERVICES, STORE, Manifest
from shipmate.backup.snapshot import ROOT, Snapshot, outside
from shipmate.config import Config
from shipmate.errors import ShipmateError, ValidationError
from shipmate.paas.gitserver import repo_path
from shipmate.paas.storage_rules import storage_root
from shipmate.services import jobs
from shipmate.services.manager import ServiceManager
from shipmate.services.model import Service
from shipmate.store.base import Store

Emit = Callable[[str], None]
#: The cluster CA's directory under the state dir (``shipmate cluster init`` makes it).
CA_DIR = "ca"


def ca_dir(config: Config) -> Path:
    """Where this machine keeps the cluster CA."""
    return Path(config.state_dir) / CA_DIR


def check_destination(dest: Path) -> Path:
    """An absolute archive path whose directory exists; refuses a directory."""
    if not dest.is_absolute():
        raise ValidationError(f"{dest}: the archive's path must be absolute")
    if dest.is_dir():
        raise ValidationError(f"{dest} is a directory", hint="name the archive file to write")
    if not dest.parent.is_dir():
        raise ValidationError(f"{dest.parent}: no such directory",
                              hint="create it first, or name a file in an existing directory")
    return dest


class BackupMaker:
    """Makes backup archives of this platform."""

    def __init__(self, store: Store, config: Config, services: ServiceManager) -> None:
        self.store, self.config, self.services = store, config, services

    async def create(self, dest: Path, emit: Emit) -> Manifest:
        """Write a backup of the platform to ``dest``; returns its manifest."""
        check_destination(dest)
        staging = Path(await asyncio.to_thread(
            tempfile.mkdtemp, prefix=".shipmate-backup-", dir=dest.parent))
        try:
            return await self._create(staging, dest, emit)
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)

    async def _create(self, staging: Path, dest: Path, emit: Emit) -> Manifest:
        kvs, revision = await self.store.range(ROOT)
        snap = Snapshot.of(kvs, revision)
        await asyncio.to_thread((staging / STORE).write_bytes, snap.to_json())
        emit(f"-----> Store snapshot at revision {revision}: {len(snap.keys)} keys")
        notes: list[str] = []
        apps = snap.apps()
        for app in apps:
            notes += await self._bundle(app, staging, emit)
        notes += await asyncio.to_thread(self._copy_ca, staging, emit)
        await asyncio.to_thread(self._copy_host_key, staging, emit)
        services = [Service.from_json(record) for _, _, record in snap.services()]
        for service in services:
            notes += await self._dump(service, staging, emit)
        root = storage_root(str(self.config.state_dir))
        kept, sizes, left = await asyncio.to_thread(storage.copy_root, Path(root), staging)
        for line in sizes:
            emit(f"-----> Storage {line.name} copied ({line.files} file(s), {line.bytes} bytes)")
        notes += left + outside(snap.mounts(), root, str(self.config.machine_id))
        manifest = Manifest(
            version=__version__, created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            store_revision=revision, machine=str(self.config.machine_id),
            members=tuple(await asyncio.to_thread(archive.members_of, staging)) + tuple(kept),
            apps=tuple(apps), services=tuple(f"{s.kind}:{s.name}" for s in services),
            notes=tuple(notes), storage=tuple(sizes), storage_root=root)
        await asyncio.to_thread(archive.write, staging, manifest, dest)
        size = (await asyncio.to_thread(dest.stat)).st_size
        emit(f"=====> Backup written: {dest} ({size} bytes, {len(manifest.members)} members)")
        for note in notes:
            emit(f" !     Not in the backup: {note}")
        return manifest

    async def _bundle(self, app: str, staging: Path, emit: Emit) -> list[str]:
        repo = repo_path(self.config.state_dir, app)
        if not (repo / "HEAD").exists():
            return [f"{app}: no git repository on this machine (never pushed here)"]
        refs = await _git(["for-each-ref", "--count=1", "--format=%(refname)"], repo)
        if refs[0] != 0 or not refs[1].strip():
            return [f"{app}: its repository is empty (never pushed)"]
        out = staging / REPOS / f"{app}.bundle"
        out.parent.mkdir(mode=0o700, exist_ok=True)
        code, text = await _git(["bundle", "create", "-q", str(out), "--all"], repo)
        if code != 0:
            emit(f" !     git bundle of {app} failed: {text.strip()}")
            return [f"{app}: git bundle failed: {text.strip()[-200:]}"]
        emit(f"-----> Repository of {app} bundled")
        return []

    def _copy_ca(self, staging: Path, emit: Emit) -> list[str]:
        src = ca_dir(self.config)
        if not src.is_dir():
            return []
        shutil.copytree(src, staging / CA.rstrip("/"), symlinks=False)
        emit(f"-----> Cluster CA ({src}) copied")
        return []

    def _copy_host_key(self, staging: Path, emit: Emit) -> None:
        src = Path(self.config.state_dir) / HOST_KEY.rpartition("/")[2]
        if src.is_file():
            (staging / HOST_KEY).parent.mkdir(mode=0o700, exist_ok=True)
            shutil.copyfile(src, staging / HOST_KEY)
            emit("-----> SSH host key copied")

    async def _dump(self, service: Service, staging: Path, emit: Emit) -> list[str]:
        label = f"{service.kind}:{service.name}"
        try:
            local = await self.services.local(service.kind, service.name)
            engine = self.services.require_engine()
            scratch = await asyncio.to_thread(
                jobs.Scratch, str(Path(self.config.state_dir) / "services" / "scratch"))
            try:
                code, out = await jobs.run_job(engine, local, jobs.dump_argv(local), scratch)
                if code != 0 or not await asyncio.to_thread(Path(scratch.file).is_file):
                    raise ShipmateError(f"dump failed (exit status {code}): {out[-300:]}")
                target = staging / SERVICES / service.kind / f"{service.name}.dump"
                target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                await asyncio.to_thread(shutil.move, scratch.file, target)
            finally:
                await asyncio.to_thread(scratch.close)
        except ShipmateError as exc:
            emit(f" !     {label} not dumped: {str(exc).splitlines()[0]}")
            return [f"{label}: not dumped: {str(exc).splitlines()[0]}"]
        emit(f"-----> {label} dumped")
        return []


async def _git(argv: list[str], repo: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "git", "--git-dir", str(repo), *argv, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")
