"""Storage directories in an archive: copied with their types, modes, owners and times,
checked by ``verify`` (a changed file or mode is named), extracted as they were (never
through a symbolic link), and moved into the storage root without losing what is there."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from shipmate.backup import archive, storage
from shipmate.backup.manifest import DIR, FILE, SYMLINK, Manifest, Member, StorageDir, allowed_name
from shipmate.errors import ValidationError

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")


def _tree(root: Path) -> Path:
    """STATE/storage with one app's directory: a file, a nested private directory, a
    symbolic link, an empty directory, a FIFO; plus a stray file and a moved-aside dir."""
    data = root / "web"
    (data / "uploads" / "deep").mkdir(parents=True)
    (data / "empty").mkdir()
    (data / "notes.txt").write_text("kept\n")
    (data / "uploads" / "deep" / "a.bin").write_bytes(b"\x00\x01" * 1000)
    os.symlink("uploads/deep/a.bin", data / "latest")
    os.mkfifo(data / "pipe")
    (data / "notes.txt").chmod(0o640)
    (data / "uploads").chmod(0o750)
    os.utime(data / "notes.txt", (1_600_000_000, 1_600_000_000))
    if os.geteuid() == 0:
        os.chown(data / "notes.txt", 1234, 2345)
    (root / "README").write_text("not a storage directory")
    (root / ".web.replaced-20240101T000000Z").mkdir()
    return root


def _archive(tmp_path: Path) -> tuple[Path, Manifest, list[str]]:
    root = _tree(tmp_path / "storage")
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "store.json").write_bytes(b'{"revision": 1, "keys": []}')
    kept, sizes, notes = storage.copy_root(root, staging)
    manifest = Manifest("v", "t", 1, "m1", tuple(archive.members_of(staging)) + tuple(kept),
                        storage=tuple(sizes), storage_root=str(root))
    dest = tmp_path / "b.tar.gz"
    archive.write(staging, manifest, dest)
    return dest, manifest, notes


def test_copy_lists_every_entry_with_its_metadata(tmp_path: Path) -> None:
    _, manifest, notes = _archive(tmp_path)
    by_name = {m.name: m for m in manifest.members}
    assert sorted(by_name) == ["storage/web", "storage/web/empty", "storage/web/latest",
                               "storage/web/notes.txt", "storage/web/uploads",
                               "storage/web/uploads/deep", "storage/web/uploads/deep/a.bin",
                               "store.json"]
    notes_txt = by_name["storage/web/notes.txt"]
    assert (notes_txt.type, notes_txt.size, notes_txt.mode, notes_txt.mtime) == \
        (FILE, 5, 0o640, 1_600_000_000)
    assert notes_txt.sha256 == hashlib.sha256(b"kept\n").hexdigest()
    assert by_name["storage/web/uploads"].type == DIR
    assert by_name["storage/web/uploads"].mode == 0o750
    link = by_name["storage/web/latest"]
    assert (link.type, link.size) == (SYMLINK, len("uploads/deep/a.bin"))
    assert by_name["store.json"].mode is None  # other members carry no metadata
    assert manifest.storage == (StorageDir("web", 2, 2005),)
    assert notes == ["storage/web/pipe: a socket, FIFO or device file (left out)"]
    assert Manifest.from_json(manifest.to_json()) == manifest


def test_an_archive_with_storage_verifies_and_extracts_as_it_was(tmp_path: Path) -> None:
    dest, _, _ = _archive(tmp_path)
    report = archive.verify(dest)
    assert report.ok, report.problems
    assert report.to_json()["manifest"]["storage"] == [{"name": "web", "files": 2,
                                                        "bytes": 2005}]
    out = tmp_path / "out"
    archive.extract(dest, out)
    web = out / "storage" / "web"
    assert (web / "notes.txt").read_text() == "kept\n"
    st = os.lstat(web / "notes.txt")
    assert (stat.S_IMODE(st.st_mode), int(st.st_mtime)) == (0o640, 1_600_000_000)
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (1234, 2345)
    assert stat.S_IMODE(os.lstat(web / "uploads").st_mode) == 0o750
    assert os.readlink(web / "latest") == "uploads/deep/a.bin"
    assert (web / "uploads" / "deep" / "a.bin").read_bytes() == b"\x00\x01" * 1000
    assert (web / "empty").is_dir() and not (web / "pipe").exists()


def _retar(src: Path, dest: Path, modes: dict[str, int], contents: dict[str, bytes]) -> Path:
    """A copy of archive ``src`` with some members' modes or (same-sized) bytes changed."""
    with tarfile.open(src, "r:gz") as tin, tarfile.open(dest, "w:gz") as tout:
        for info in tin.getmembers():
            data = tin.extractfile(info) if info.isfile() else None
            body = data.read() if data else None
            info.mode = modes.get(info.name, info.mode)
            body = contents.get(info.name, body)
            tout.addfile(info, io.BytesIO(body) if body is not None else None)
    return dest


def test_a_changed_mode_or_file_is_named(tmp_path: Path) -> None:
    dest, _, _ = _archive(tmp_path)
    changed = _retar(dest, tmp_path / "c.tar.gz", {"storage/web/uploads": 0o777},
                     {"storage/web/notes.txt": b"lost\n"})
    problems = archive.verify(changed).problems
    assert len(problems) == 2, problems
    assert problems[0] == ("storage/web/notes.txt: SHA-256 does not match the manifest "
                           "(changed or damaged)")
    assert problems[1].startswith("storage/web/uploads: mode, owner or time is not the "
                                  "manifest's")


def test_extraction_never_writes_through_a_symbolic_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    body = b"owned\n"
    members = {"store.json": (b"{}", None), "storage/web": (None, None),
               "storage/web/link": (None, str(outside)),
               "storage/web/link/evil": (body, None)}
    listed = []
    tar_path = tmp_path / "evil.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        infos = []
        for name, (data, target) in members.items():
            info = tarfile.TarInfo(name)
            meta: dict[str, int] = {"mode": 0o755, "uid": 0, "gid": 0, "mtime": 0}
            info.mode = 0o755
            if name == "store.json":
                info.size = len(b"{}")
                listed.append(Member(name, 2, hashlib.sha256(b"{}").hexdigest()))
            elif target is not None:
                info.type, info.linkname = tarfile.SYMTYPE, target
                raw = target.encode()
                listed.append(Member(name, len(raw), hashlib.sha256(raw).hexdigest(),
                                     SYMLINK, **meta))
            elif data is None:
                info.type = tarfile.DIRTYPE
                listed.append(Member(name, 0, hashlib.sha256(b"").hexdigest(), DIR, **meta))
            else:
                info.size = len(data)
                listed.append(Member(name, len(data), hashlib.sha256(data).hexdigest(), FILE,
                                     **meta))
            infos.append((info, data))
        manifest = Manifest("v", "t", 1, "m", tuple(listed)).to_json()
        head = tarfile.TarInfo("manifest.json")
        head.size = len(manifest)
        tar.addfile(head, io.BytesIO(manifest))
        for info, data in infos:
            tar.addfile(info, io.BytesIO(data) if data else None)
    assert archive.verify(tar_path).ok  # the checksums agree: only extraction can tell
    with pytest.raises(ValidationError, match="leads out of the storage"):
        archive.extract(tar_path, tmp_path / "out")
    assert list(outside.iterdir()) == []


def test_storage_member_names(tmp_path: Path) -> None:
    for name in ("storage/web", "storage/web/a b.txt", "storage/my.app_1/x/.hidden"):
        assert allowed_name(name), name
    for name in ("storage/../x", "storage/Web/x", "storage/web/../../etc", "storage/web/./x",
                 "storage/", "storage/.web/x", "storage//x"):
        assert not allowed_name(name), name


def _extracted(tmp_path: Path) -> tuple[Path, Manifest]:
    dest, manifest, _ = _archive(tmp_path)
    out = tmp_path / "out"
    archive.extract(dest, out)
    return out, manifest


def test_place_moves_directories_and_keeps_what_is_there(tmp_path: Path) -> None:
    out, manifest = _extracted(tmp_path)
    sizes = {s.name: s for s in manifest.storage}
    root = tmp_path / "new" / "storage"
    (root / "web").mkdir(parents=True)
    (root / "web" / "mine").write_text("already here")
    lines: list[str] = []
    failed = storage.place(out, root, sizes, False, lines.append)
    assert failed == [f"storage web: {root / 'web'} exists already and is not empty (kept; "
                      "--force moves it aside)"]
    assert (root / "web" / "mine").read_text() == "already here"
    assert storage.place(out, root, sizes, True, lines.append) == []
    assert (root / "web" / "notes.txt").read_text() == "kept\n"
    (aside,) = root.glob(".web.replaced-*")
    assert (aside / "mine").read_text() == "already here"
    assert lines[-1] == f"-----> Storage web restored to {root / 'web'} (2 file(s), 2005 bytes)"


def test_place_fills_an_empty_directory(tmp_path: Path) -> None:
    out, _ = _extracted(tmp_path)
    root = tmp_path / "new" / "storage"
    (root / "web").mkdir(parents=True)  # storage:ensure-directory ran before the restore
    assert storage.place(out, root, {}, False, lambda line: None) == []
    assert (root / "web" / "notes.txt").read_text() == "kept\n"


def test_no_storage_root_means_no_members(tmp_path: Path) -> None:
    assert storage.copy_root(tmp_path / "missing", tmp_path) == ([], [], [])
    assert dataclasses.asdict(StorageDir("x", 0, 0)) == {"name": "x", "files": 0, "bytes": 0}
