"""The storage root's directories in a backup (``storage:ensure-directory`` makes them,
``storage:mount`` hands them to apps): the data that outlives deploys.

On ``create`` every directory ``STATE/storage/NAME`` is copied into the staging directory
as it is at that moment (the apps keep running: each file is as consistent as a copy made
with ``cp -a`` would be), and listed with each directory, file and symbolic link's type,
mode, owner and time; a symbolic link is kept as a link, never followed; sockets, FIFOs and
devices are left out and named in the notes. On ``restore`` each directory is moved into
this machine's storage root before any app is deployed. A directory there already that is
not empty is kept (the restore says so) unless ``--force``, which moves it aside to
``STATE/storage/.NAME.replaced-TIME`` instead of deleting it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

from shipmate.backup.manifest import DIR, FILE, STORAGE, SYMLINK, Member, StorageDir
from shipmate.errors import ValidationError
from shipmate.paas.storage_rules import validate_storage_name

Emit = Callable[[str], None]
_CHUNK = 1 << 20
_EMPTY = hashlib.sha256(b"").hexdigest()


def _valid(name: str) -> bool:
    try:
        validate_storage_name(name)
    except ValidationError:
        return False
    return True


def copy_root(root: Path, staging: Path) -> tuple[list[Member], list[StorageDir], list[str]]:
    """Copy every storage directory of ``root`` to ``staging/storage``: the members (sorted),
    each directory's size line, and what was left out."""
    members: list[Member] = []
    sizes: list[StorageDir] = []
    notes: list[str] = []
    if not root.is_dir():
        return members, sizes, notes
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if not _valid(entry.name):
            continue  # not a storage directory (.NAME.replaced-..., a stray file)
        if not entry.is_dir(follow_symlinks=False):
            notes.append(f"storage {entry.name}: not a directory (a link or a file)")
            continue
        found = _copy_tree(Path(entry.path), staging, STORAGE + entry.name, notes)
        files = [m for m in found if m.type == FILE]
        sizes.append(StorageDir(entry.name, len(files), sum(m.size for m in files)))
        members += found
    return sorted(members, key=lambda m: m.name), sizes, notes


def _copy_tree(src: Path, staging: Path, name: str, notes: list[str]) -> list[Member]:
    """Copy ``src`` to ``staging/name`` (no recursion: trees may be deep)."""
    out: list[Member] = []
    todo = [(src, name)]
    while todo:
        path, member = todo.pop()
        try:
            st = os.lstat(path)
            found = _copy_one(path, st, staging / member, member)
            if found is None:
                notes.append(f"{member}: a socket, FIFO or device file (left out)")
                continue
            out.append(found)
            if found.type == DIR:
                with os.scandir(path) as entries:
                    todo += [(Path(e.path), f"{member}/{e.name}") for e in entries]
        except OSError as exc:
            notes.append(f"{member}: not copied ({exc.strerror or exc})")
    return out


def _copy_one(path: Path, st: os.stat_result, dest: Path, name: str) -> Member | None:
    meta = {"mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
            "mtime": int(st.st_mtime)}
    if stat.S_ISDIR(st.st_mode):
        dest.mkdir(mode=0o700, parents=True)
        return Member(name, 0, _EMPTY, DIR, **meta)
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(path)
        os.symlink(target, dest)
        raw = os.fsencode(target)
        return Member(name, len(raw), hashlib.sha256(raw).hexdigest(), SYMLINK, **meta)
    if not stat.S_ISREG(st.st_mode):
        return None
    digest, size = hashlib.sha256(), 0
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with open(fd, "rb") as src, open(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                                             0o600), "wb") as out:
        while chunk := src.read(_CHUNK):  # hashed as copied: the copy is what is archived
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return Member(name, size, digest.hexdigest(), FILE, **meta)


def place(staging: Path, root: Path, sizes: dict[str, StorageDir], force: bool,
          emit: Emit) -> list[str]:
    """Move the extracted storage directories of ``staging`` into ``root``; what could not
    be restored."""
    src_root = staging / STORAGE.rstrip("/")
    if not src_root.is_dir():
        return []
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    failed = []
    for src in sorted(src_root.iterdir()):
        dest = root / src.name
        if dest.is_symlink() or dest.exists():
            if dest.is_dir() and not dest.is_symlink() and not any(dest.iterdir()):
                dest.rmdir()
            elif not force:
                failed.append(f"storage {src.name}: {dest} exists already and is not empty "
                              "(kept; --force moves it aside)")
                continue
            else:
                aside = root / f".{src.name}.replaced-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}"
                dest.rename(aside)
                emit(f"       {dest} was there already: moved to {aside}")
        src.rename(dest)
        size = sizes.get(src.name)
        emit(f"-----> Storage {src.name} restored to {dest}"
             + (f" ({size.files} file(s), {size.bytes} bytes)" if size else ""))
    return failed
