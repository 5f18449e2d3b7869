"""Writing, reading and verifying backup archives (gzip'd tar files; the rules are in
:mod:`.manifest`).

An archive is written from a staging directory: the manifest first (so a reader learns what
to expect before the data), then every member in the manifest's order, into ``FILE.partial``
(0600) that is renamed to ``FILE`` once complete. A reader streams the archive once, hashing
each member as it goes; a truncated or damaged file is reported as such, never as a crash.

Members are written 0600 and owned by root, except the storage directories' (``storage/``),
which keep the type, mode, owner and time the manifest gives them, and are extracted with
them (owners when the daemon runs as root), never through a symbolic link.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from shipmate.backup.manifest import (
    DIR,
    FILE,
    MANIFEST,
    REPOS,
    STORAGE,
    SYMLINK,
    Manifest,
    Member,
    allowed_name,
    problems,
)
from shipmate.errors import ValidationError

_CHUNK = 1 << 20
_DAMAGED = (tarfile.TarError, EOFError, zlib.error, OSError)


def sha256_file(path: Path) -> tuple[int, str]:
    """(size, SHA-256 hex) of a file."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def members_of(staging: Path) -> list[Member]:
    """Every file under ``staging`` (relative names, sorted) with its size and checksum,
    but those under ``storage/`` (:mod:`.storage` lists them with their metadata)."""
    out = []
    for path in sorted(p for p in staging.rglob("*") if p.is_file()):
        if path.relative_to(staging).as_posix().startswith(STORAGE):
            continue
        size, digest = sha256_file(path)
        out.append(Member(path.relative_to(staging).as_posix(), size, digest))
    return out


def write(staging: Path, manifest: Manifest, dest: Path) -> None:
    """Write the archive of ``staging`` (which holds every member the manifest lists) to
    ``dest``, atomically."""
    partial = dest.with_name(dest.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            body = manifest.to_json()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode = len(body), 0o600
            tar.addfile(info, _bytes_reader(body))
            for member in manifest.members:
                if member.name.startswith(STORAGE):
                    _add_storage(tar, staging, member)
                else:
                    tar.add(staging / member.name, arcname=member.name, recursive=False,
                            filter=_private)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise


def _private(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o600
    return info


def _add_storage(tar: tarfile.TarFile, staging: Path, member: Member) -> None:
    """A storage member with the manifest's metadata (the staging copy's may differ: the
    daemon may not own files as their owners did)."""
    info = tarfile.TarInfo(member.name)
    info.mode, info.uid, info.gid = member.mode or 0, member.uid or 0, member.gid or 0
    info.mtime = member.mtime or 0
    if member.type == DIR:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif member.type == SYMLINK:
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(staging / member.name)
        tar.addfile(info)
    else:
        info.size = member.size
        with open(staging / member.name, "rb") as fh:
            tar.addfile(info, fh)


def _bytes_reader(data: bytes) -> IO[bytes]:
    import io

    return io.BytesIO(data)


@dataclasses.dataclass(frozen=True)
class Report:
    """What :func:`verify` found."""

    path: str
    manifest: Manifest | None
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return self.manifest is not None and not self.problems

    def to_json(self) -> dict[str, Any]:
        """``backup verify --format json``."""
        return {"path": self.path, "ok": self.ok, "problems": list(self.problems),
                "manifest": self.manifest.summary() if self.manifest else None}


def _open(path: Path) -> tarfile.TarFile:
    if not path.is_file():
        raise ValidationError(f"{path}: no such file", hint="give the path of a backup archive")
    try:
        return tarfile.open(path, mode="r|gz")
    except _DAMAGED as exc:
        raise ValidationError(f"{path} is not a gzip'd tar archive ({exc})",
                              hint="give a file made by `shipmate backup create`") from exc


_EMPTY = hashlib.sha256(b"").hexdigest()


def _read_all(tar: tarfile.TarFile, on_member: Any) -> tuple[bytes | None, dict[str, Member],
                                                              list[str]]:
    """Stream every member: the manifest's bytes, what the others are, problems."""
    manifest, seen, issues = None, {}, []
    for info in tar:
        storage = info.name.startswith(STORAGE) and allowed_name(info.name)
        if storage and (info.isdir() or info.issym()):
            seen[info.name] = _link_or_dir(info)
            continue
        if not info.isfile() or not allowed_name(info.name):
            issues.append(f"{info.name}: not a file a Shipmate backup holds")
            continue
        fh = tar.extractfile(info)
        assert fh is not None
        if info.name == MANIFEST:
            manifest = fh.read(16 * 2**20)
            continue
        digest, size = hashlib.sha256(), 0
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            on_member(info.name, chunk)
        if size != info.size:
            raise EOFError(f"{info.name} ends after {size} of {info.size} bytes")
        seen[info.name] = Member(info.name, size, digest.hexdigest(), FILE, **_meta(info)) \
            if storage else Member(info.name, size, digest.hexdigest())
    return manifest, seen, issues


def _meta(info: tarfile.TarInfo) -> dict[str, int]:
    return {"mode": info.mode, "uid": info.uid, "gid": info.gid, "mtime": int(info.mtime)}


def _link_or_dir(info: tarfile.TarInfo) -> Member:
    if info.isdir():
        return Member(info.name, 0, _EMPTY, DIR, **_meta(info))
    target = os.fsencode(info.linkname)
    return Member(info.name, len(target), hashlib.sha256(target).hexdigest(), SYMLINK,
                  **_meta(info))


def verify(path: Path, *, bundles: bool = True) -> Report:
    """Check an archive: readable to its end, a valid manifest, every checksum, and (with
    ``bundles``) every repository bundle accepted by ``git bundle verify``."""
    with tempfile.TemporaryDirectory(prefix="shipmate-verify-") as tmp:
        sink = _BundleSink(Path(tmp)) if bundles else None
        try:
            with _open(path) as tar:
                raw, seen, issues = _read_all(tar, sink.write if sink else _ignore)
        except ValidationError:
            raise
        except _DAMAGED as exc:
            return Report(str(path), None, (f"the archive is truncated or damaged: {exc}"
                                            " (it cannot be read to its end)",))
        if raw is None:
            return Report(str(path), None, (f"no {MANIFEST} in the archive", *issues))
        try:
            manifest = Manifest.from_json(raw)
        except ValidationError as exc:
            return Report(str(path), None, (str(exc), *issues))
        issues += problems(manifest, seen)
        if sink is not None and not issues:
            issues += sink.check()
        return Report(str(path), manifest, tuple(issues))


def _ignore(name: str, chunk: bytes) -> None:
    return None


class _BundleSink:
    """Keeps the bundles seen while streaming, to run ``git bundle verify`` on each."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, Path] = {}

    def write(self, name: str, chunk: bytes) -> None:
        if not name.startswith(REPOS):
            return
        path = self.files.setdefault(name, self.root / name.replace("/", "_"))
        with open(path, "ab") as fh:
            fh.write(chunk)

    def check(self) -> list[str]:
        if not self.files:
            return []
        repo = self.root / "empty.git"
        subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True,
                       capture_output=True)
        out = []
        for n, (name, path) in enumerate(sorted(self.files.items())):
            # `git bundle verify` reads the header only; fetching reads the whole pack.
            for argv, what in ((["bundle", "verify", "-q", str(path)], "git bundle verify"),
                               (["fetch", "-q", str(path), f"+refs/*:refs/b{n}/*"],
                                "git cannot read its objects")):
                res = subprocess.run(["git", "--git-dir", str(repo), *argv],
                                     capture_output=True, text=True)
                if res.returncode != 0:
                    why = (res.stderr.strip().splitlines() or ["git refused it"])[-1]
                    out.append(f"{name}: {what} failed: {why}"
                               if what.startswith("git bundle") else f"{name}: {what}: {why}")
                    break
            else:
                refs = subprocess.run(["git", "--git-dir", str(repo), "for-each-ref",
                                       f"refs/b{n}/"], capture_output=True, text=True).stdout
                if not refs.strip():
                    out.append(f"{name}: the bundle holds no branch (cut short?)")
        return out


def extract(path: Path, dest: Path) -> Manifest:
    """Verify the archive, then extract it under ``dest`` (0700 directories, 0600 files);
    raises ValidationError listing what is wrong instead."""
    report = verify(path)
    if not report.ok or report.manifest is None:
        raise ValidationError(f"{path} did not verify: " + "; ".join(report.problems),
                              hint="`shipmate backup verify FILE` lists every problem")
    dirs: list[tuple[tarfile.TarInfo, Path]] = []
    with _open(path) as tar:
        for info in tar:
            if info.name == MANIFEST or not allowed_name(info.name):
                continue
            target = dest / info.name
            if info.name.startswith(STORAGE):
                _put_storage(tar, info, dest / STORAGE, target, dirs)
                continue
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fh = tar.extractfile(info)
            assert fh is not None
            with open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
                while chunk := fh.read(_CHUNK):
                    out.write(chunk)
    for info, target in reversed(dirs):  # deepest first; a 0555 directory is filled by now
        _set_meta(target, info)
    return report.manifest


def _put_storage(tar: tarfile.TarFile, info: tarfile.TarInfo, top: Path, target: Path,
                 dirs: list[tuple[tarfile.TarInfo, Path]]) -> None:
    """Write one storage member, never through a symbolic link (a crafted archive could
    list ``d/link`` to ``/etc`` and then ``d/link/passwd``); a directory gets its mode at
    the end, once its members are in."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    real, root = os.path.realpath(target.parent), os.path.realpath(top)
    if real != root and not real.startswith(root + os.sep):
        raise ValidationError(f"{info.name}: its directory leads out of the storage (a "
                              "symbolic link in the archive)", hint="this is not an archive "
                              "`shipmate backup create` made; do not restore it")
    if info.isdir():
        if target.is_symlink() or not target.is_dir():
            target.mkdir(mode=0o700)
        dirs.append((info, target))
        return
    try:
        if info.issym():
            os.symlink(info.linkname, target)
        else:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            fh = tar.extractfile(info)
            assert fh is not None
            with open(fd, "wb") as out:
                while chunk := fh.read(_CHUNK):
                    out.write(chunk)
    except FileExistsError as exc:
        raise ValidationError(f"{info.name} is in the archive twice",
                              hint="this is not an archive `shipmate backup create` made") from exc
    _set_meta(target, info)


def _set_meta(path: Path, info: tarfile.TarInfo) -> None:
    """Owner (when this process may give it), then mode (chown clears set-id bits), then
    time; a symbolic link gets its owner and time only."""
    with contextlib.suppress(PermissionError):
        os.lchown(path, info.uid, info.gid)
    if not info.issym():
        os.chmod(path, info.mode)
    os.utime(path, (info.mtime, info.mtime), follow_symlinks=False)


def iter_files(root: Path, prefix: str) -> Iterator[Path]:
    """Files under ``root / prefix``, sorted."""
    base = root / prefix
    return iter(sorted(p for p in base.rglob("*") if p.is_file())) if base.is_dir() \
        else iter(())
