"""Bringing a platform back from a backup archive, on the daemon of a fresh machine.

Order: verify and unpack the archive; refuse a platform that already has apps, services or
repositories (unless forced); write the store snapshot back (:mod:`.snapshot` says which
keys, and moves the apps' storage mounts to this machine); restore the repositories, the
cluster CA and the storage directories (:mod:`.storage`); start every service and load its
dump; then rebuild every deployed app from its repository at its current release's commit and
deploy it as that same release (:mod:`.restore_work`). Each step that fails is reported and
the restore goes on with the next: at the end it lists what it could not restore, and the
stream ends with an error when that list is not empty.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from shipmate.backup import archive, storage
from shipmate.backup.create import ca_dir
from shipmate.backup.manifest import CA, HOST_KEY, REPOS, SERVICES, STORE, Manifest
from shipmate.backup.restore_work import AppRebuilder, ServiceRestorer
from shipmate.backup.snapshot import Snapshot
from shipmate.config import Config
from shipmate.errors import ConflictError, ShipmateError, ValidationError
from shipmate.paas.gitserver import ensure_repo
from shipmate.paas.service import Paas
from shipmate.paas.state import APPS
from shipmate.paas.storage_rules import storage_root
from shipmate.paas.units import parse_unit_name
from shipmate.services.manager import ServiceManager
from shipmate.services.model import Service
from shipmate.services.state import PREFIX as SERVICES_PREFIX
from shipmate.store.base import Op, Store

Emit = Callable[[str], None]
_BATCH = 64  # puts per store transaction


class RestoreFailed(ShipmateError):
    """Some of the platform could not be restored (the rest was)."""

    status = 500
    code = "restore_incomplete"


class Restorer:
    """Restores this platform from a backup archive."""

    def __init__(self, store: Store, config: Config, paas: Paas,
                 services: ServiceManager) -> None:
        self.store, self.config, self.paas, self.services = store, config, paas, services

    async def restore(self, path: Path, force: bool, emit: Emit) -> None:
        """Restore from the archive at ``path``; raises :class:`RestoreFailed` listing what
        could not be restored."""
        if not path.is_absolute():
            raise ValidationError(f"{path}: the archive's path must be absolute")
        if not force:
            await self.check_fresh()
        root = Path(self.config.state_dir)
        await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
        staging = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=".restore-", dir=root))
        try:
            emit(f"-----> Verifying {path}")
            manifest = await asyncio.to_thread(archive.extract, path, staging)
            failed = await self._restore(staging, manifest, force, emit)
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)
        if failed:
            emit("=====> Restore finished; NOT restored:")
            for item in failed:
                emit(f" !     {item}")
            raise RestoreFailed(f"{len(failed)} part(s) of the platform could not be restored "
                                "(listed above)", hint="fix the cause and redeploy those apps "
                                "(`ps:rebuild APP`, a push) or restore again with --force")
        emit("=====> Restore finished: everything in the archive was restored")

    async def check_fresh(self) -> None:
        """Refuse a platform that already has apps, services or repositories."""
        found = []
        for prefix, what in ((APPS, "apps"), (SERVICES_PREFIX, "services")):
            kvs, _ = await self.store.range(prefix)
            if kvs:
                found.append(what)
        repos = Path(self.config.state_dir) / "repos"
        if repos.is_dir() and any(repos.glob("*.git")):
            found.append("git repositories")
        if found:
            raise ConflictError(f"this platform is not empty: it has {' and '.join(found)}",
                                hint="restore on a fresh state dir, or add --force to write "
                                     "the archive over what is here")

    async def _restore(self, staging: Path, manifest: Manifest, force: bool,
                       emit: Emit) -> list[str]:
        snap = Snapshot.from_json(await asyncio.to_thread((staging / STORE).read_bytes))
        root = storage_root(str(self.config.state_dir))
        snap = snap.storage_moved((manifest.storage_root, manifest.machine),
                                  (root, str(self.config.machine_id)))
        emit(f"-----> Archive of {manifest.machine}, made {manifest.created} by Shipmate "
             f"{manifest.version} (store revision {manifest.store_revision})")
        failed = [f"(when the backup was made) {n}" for n in manifest.notes]
        services = [Service.from_json(v) for _, _, v in snap.services()]
        restarted = {s.unit for s in services} | {
            u for u in snap.unit_names() if (p := parse_unit_name(u)) and p[0] in snap.apps()}
        keys = snap.restored_keys(restarted)
        await self._write_keys(keys)
        emit(f"-----> Store: {len(keys)} keys written")
        failed += await asyncio.to_thread(self._repos, staging, snap, emit)
        failed += await asyncio.to_thread(self._ca, staging, force, emit)
        await asyncio.to_thread(self._host_key, staging, emit)
        failed += await asyncio.to_thread(storage.place, staging, Path(root), {
            s.name: s for s in manifest.storage}, force, emit)
        svc = ServiceRestorer(self.store, self.config, self.services)
        for service in services:
            dump = staging / SERVICES / service.kind / f"{service.name}.dump"
            failed += await svc.restore(service, dump if dump.is_file() else None, emit)
        apps = AppRebuilder(self.store, self.config, self.paas)
        for app, version in snap.apps().items():
            if version is None:
                emit(f"-----> {app}: never deployed; its records are restored")
                continue
            failed += await apps.rebuild(app, version, emit)
        return failed

    async def _write_keys(self, keys: dict[str, bytes]) -> None:
        items = sorted(keys.items())
        for i in range(0, len(items), _BATCH):
            await self.store.txn([], [Op.put(k, v) for k, v in items[i:i + _BATCH]])

    def _repos(self, staging: Path, snap: Snapshot, emit: Emit) -> list[str]:
        failed = []
        for app in snap.apps():
            bundle = staging / REPOS / f"{app}.bundle"
            if not bundle.is_file():
                continue
            try:
                restore_repo(self.config, app, bundle)
                emit(f"-----> Repository of {app} restored")
            except (ShipmateError, OSError) as exc:
                failed.append(f"{app}: repository not restored: {exc}")
        return failed

    def _ca(self, staging: Path, force: bool, emit: Emit) -> list[str]:
        src, dest = staging / CA.rstrip("/"), ca_dir(self.config)
        if not src.is_dir():
            return []
        if dest.exists() and any(dest.iterdir()) and not force:
            return [f"cluster CA: {dest} exists already (kept; --force replaces it)"]
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(src, dest)
        for p in [dest, *dest.rglob("*")]:
            p.chmod(0o700 if p.is_dir() else 0o600)
        emit(f"-----> Cluster CA restored to {dest}")
        return []

    def _host_key(self, staging: Path, emit: Emit) -> None:
        src = staging / HOST_KEY
        dest = Path(self.config.state_dir) / HOST_KEY.rpartition("/")[2]
        if not src.is_file() or (dest.is_file() and dest.read_bytes() == src.read_bytes()):
            return
        tmp = dest.with_suffix(".restored")
        shutil.copyfile(src, tmp)
        tmp.chmod(0o600)
        tmp.replace(dest)
        emit("-----> SSH host key restored: restart the daemon (`shipmate down && shipmate "
             "up`) for the SSH server to use it")


def restore_repo(config: Config, app: str, bundle: Path) -> Path:
    """Make the app's bare repository (with Shipmate's hook) and fetch every ref of the
    bundle into it; HEAD names the deploy branch it has."""
    import subprocess

    repo = ensure_repo(config.state_dir, app, int(config.push_max_bytes))
    git = ["git", "--git-dir", str(repo)]
    res = subprocess.run([*git, "fetch", "-q", "--update-head-ok", str(bundle),
                          "+refs/*:refs/*"], capture_output=True, text=True)
    if res.returncode != 0:
        raise ShipmateError(f"git fetch from the bundle failed: {res.stderr.strip()[-300:]}")
    for branch in ("main", "master"):
        ok = subprocess.run([*git, "rev-parse", "-q", "--verify", f"refs/heads/{branch}"],
                            capture_output=True)
        if ok.returncode == 0:
            subprocess.run([*git, "symbolic-ref", "HEAD", f"refs/heads/{branch}"], check=True,
                           capture_output=True)
            break
    return repo
