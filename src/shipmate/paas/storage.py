"""Persistent storage, Dokku's ``storage:*``: directories of this machine mounted into every
process container of an app from its next deploy (``ps:restart`` applies them at once).

The rules for paths are in :mod:`.storage_rules` (pure); this module makes directories,
looks at the file system (a mount's directory must exist, and a symlink must not lead out of
what the rules allow) and keeps the records (:class:`~shipmate.paas.attach.AttachmentStore`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from shipmate.config import Config
from shipmate.errors import ValidationError
from shipmate.paas import storage_rules as rules
from shipmate.paas.attach import AttachmentStore
from shipmate.paas.state import PaasState
from shipmate.store.base import Store

Emit = Callable[[str], None]
#: Dokku's ``--chown`` choices: the user the app's processes run as.
CHOWN = {"herokuish": (32767, 32767), "heroku": (1000, 1000), "paketo": (2000, 2000),
         "packeto": (2000, 2000), "root": (0, 0)}


def chown_ids(option: str) -> tuple[int, int] | None:
    """``--chown`` as (uid, gid); None for ``false`` (leave the owner alone)."""
    if option == "false":
        return None
    if option in CHOWN:
        return CHOWN[option]
    uid, _, gid = option.partition(":")
    if uid.isdigit() and (not gid or gid.isdigit()) and int(uid) < 2**31:
        return int(uid), int(gid or uid)
    raise ValidationError(f"Invalid --chown {option!r}",
                          hint="one of herokuish, heroku, paketo, root, false, or UID[:GID]")


class Storage:
    """``storage:*`` of this machine."""

    def __init__(self, store: Store, config: Config) -> None:
        self.config = config
        self.state = PaasState(store)
        self.records = AttachmentStore(store)

    @property
    def root(self) -> str:
        """The storage root, ``STATE/storage``."""
        return rules.storage_root(str(self.config.state_dir))

    async def ensure_directory(self, name: str, chown: str, emit: Emit) -> str:
        """``storage:ensure-directory NAME``: make ``STATE/storage/NAME`` (idempotent)."""
        path = os.path.join(self.root, rules.validate_storage_name(name))
        ids = chown_ids(chown)
        emit(f"-----> Ensuring {path} exists")
        owned = await asyncio.to_thread(_make_dir, self.root, path, ids)
        if ids is not None:
            emit(f"       Setting directory ownership to {ids[0]}:{ids[1]}" if owned else
                 f" !     Ownership left as it is: the daemon may not chown to {ids[0]}")
        return path

    async def mount(self, app: str, text: str, *, remote: bool) -> rules.StorageMount:
        """``storage:mount APP HOST:CONTAINER``: record it (the next deploy applies it)."""
        await self.state.get_app(app)
        new = rules.parse_mount(text, str(self.config.state_dir), remote=remote,
                                machine=self.config.machine_id)
        await asyncio.to_thread(self._check_on_disk, new.host, remote)
        current = await self.records.read(app)
        await self.records.set_mounts(app, rules.add_mount(list(current.mounts), new))
        return new

    async def unmount(self, app: str, text: str, *, remote: bool) -> rules.StorageMount:
        """``storage:unmount APP HOST:CONTAINER``."""
        await self.state.get_app(app)
        gone = rules.parse_mount(text, str(self.config.state_dir), remote=remote, machine="")
        current = await self.records.read(app)
        await self.records.set_mounts(app, rules.remove_mount(list(current.mounts), gone))
        return gone

    async def list(self, app: str) -> list[rules.StorageMount]:
        """The app's mounts."""
        await self.state.get_app(app)
        return list((await self.records.read(app)).mounts)

    async def report(self, app: str) -> dict[str, Any]:
        """``storage:report``: Dokku's build/deploy/run mounts (``-v`` form) and the machine."""
        mounts = await self.list(app)
        volumes = " ".join(f"-v {m.spec}" for m in mounts)
        return {"build_mounts": "", "deploy_mounts": volumes, "run_mounts": volumes,
                "machine": next((m.machine for m in mounts if m.machine), "")}

    def _check_on_disk(self, path: str, remote: bool) -> None:
        """The directory exists and, symlinks resolved, is still one the rules allow."""
        if not os.path.isdir(path):
            raise ValidationError(f"Refusing to mount {path!r}: no such directory on "
                                  f"{self.config.machine_id}",
                                  hint="make it first: storage:ensure-directory NAME")
        real = os.path.realpath(path)
        if real != path:
            rules.check_host_path(real, str(self.config.state_dir), remote=remote)
            if remote:
                raise ValidationError(f"Refusing to mount {path!r}: it is a symbolic link")


def _make_dir(root: str, path: str, ids: tuple[int, int] | None) -> bool:
    """Make ``path``; True when it is owned as ``ids`` asked."""
    os.makedirs(root, mode=0o755, exist_ok=True)
    if os.path.islink(path):
        raise ValidationError(f"{path} is a symbolic link", hint="remove it first")
    os.makedirs(path, mode=0o755, exist_ok=True)
    if ids is None:
        return True
    try:
        os.chown(path, *ids)
    except PermissionError:
        return False
    return True
