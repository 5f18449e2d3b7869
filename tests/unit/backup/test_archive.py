"""The archive's manifest and verification: a sound archive verifies; a changed, missing,
extra or unsafe member, a damaged bundle, a bad manifest and a truncated file are each
reported with a message that says what is wrong."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from shipmate.backup import archive
from shipmate.backup.manifest import Manifest, Member, allowed_name, problems
from shipmate.errors import ValidationError

GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_NOSYSTEM": "1"}


def _bundle(tmp: Path) -> bytes:
    work = tmp / "work"
    work.mkdir()
    for argv in (["git", "init", "-q", "-b", "main"], ["git", "commit", "-q", "--allow-empty",
                                                        "-m", "one"],
                 ["git", "bundle", "create", "-q", "../app.bundle", "--all"]):
        subprocess.run(argv, cwd=work, env=GIT_ENV, check=True, capture_output=True)
    return (tmp / "app.bundle").read_bytes()


def _manifest(files: dict[str, bytes]) -> Manifest:
    return Manifest("0.1.0", "2024-01-01T00:00:00+00:00", 42, "m1",
                    tuple(Member(n, len(b), hashlib.sha256(b).hexdigest())
                          for n, b in sorted(files.items())), apps=("web",))


def _tar(path: Path, manifest: bytes | None, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in ([("manifest.json", manifest)] if manifest is not None else []) + \
                sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, bytes]:
    return {"store.json": b'{"revision": 42, "keys": []}', "repos/web.bundle": _bundle(tmp_path),
            "services/postgres/db.dump": b"PGDMP..."}


def test_an_archive_written_from_staging_verifies(tmp_path: Path,
                                                  files: dict[str, bytes]) -> None:
    staging = tmp_path / "staging"
    for name, data in files.items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_bytes(data)
    manifest = _manifest(files)
    assert archive.members_of(staging) == list(manifest.members)
    dest = tmp_path / "b.tar.gz"
    archive.write(staging, manifest, dest)
    assert dest.stat().st_mode & 0o777 == 0o600
    assert not dest.with_name("b.tar.gz.partial").exists()
    report = archive.verify(dest)
    assert report.ok, report.problems
    assert report.manifest == manifest
    assert report.to_json()["manifest"]["store_revision"] == 42
    out = tmp_path / "out"
    assert archive.extract(dest, out) == manifest
    assert (out / "repos/web.bundle").read_bytes() == files["repos/web.bundle"]


def test_a_changed_member_fails_its_checksum(tmp_path: Path, files: dict[str, bytes]) -> None:
    manifest = _manifest(files).to_json()
    changed = {**files, "services/postgres/db.dump": b"PGDMP.!."}  # same size, other bytes
    report = archive.verify(_tar(tmp_path / "t.tar.gz", manifest, changed))
    assert not report.ok
    assert report.problems == ("services/postgres/db.dump: SHA-256 does not match the "
                               "manifest (changed or damaged)",)


def test_a_missing_member_and_an_extra_one_are_named(tmp_path: Path,
                                                     files: dict[str, bytes]) -> None:
    manifest = _manifest(files).to_json()
    rest = {k: v for k, v in files.items() if k != "repos/web.bundle"}
    rest["repos/other.bundle"] = files["repos/web.bundle"]
    report = archive.verify(_tar(tmp_path / "m.tar.gz", manifest, rest))
    assert report.problems == ("repos/web.bundle: missing from the archive",
                               "repos/other.bundle: in the archive but not in the manifest")
    with pytest.raises(ValidationError, match=r"did not verify: repos/web\.bundle: missing"):
        archive.extract(tmp_path / "m.tar.gz", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_damaged_bundle_fails_git_bundle_verify(tmp_path: Path,
                                                  files: dict[str, bytes]) -> None:
    bad = {**files, "repos/web.bundle": files["repos/web.bundle"][:60]}
    report = archive.verify(_tar(tmp_path / "g.tar.gz", _manifest(bad).to_json(), bad))
    assert len(report.problems) == 1
    assert report.problems == ("repos/web.bundle: the bundle holds no branch (cut short?)",)
    # the header alone is sound: only reading the pack finds the damage
    header = files["repos/web.bundle"].split(b"\n\n")[0] + b"\n\n"
    bad = {**files, "repos/web.bundle": header + b"PACK\x00\x00\x00\x02garbage"}
    report = archive.verify(_tar(tmp_path / "h.tar.gz", _manifest(bad).to_json(), bad))
    assert report.problems[0].startswith("repos/web.bundle: git cannot read its objects")


def test_a_truncated_archive_says_so(tmp_path: Path, files: dict[str, bytes]) -> None:
    whole = _tar(tmp_path / "w.tar.gz", _manifest(files).to_json(), files).read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    report = archive.verify(cut)
    assert not report.ok and report.manifest is None
    assert "truncated or damaged" in report.problems[0]


def test_a_file_that_is_not_an_archive_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("hello")
    with pytest.raises(ValidationError, match="not a gzip'd tar archive"):
        archive.verify(tmp_path / "x")
    with pytest.raises(ValidationError, match="no such file"):
        archive.verify(tmp_path / "missing")


@pytest.mark.parametrize(("text", "why"), [
    (b"{", "not JSON"), (b'{"kind": "other"}', "not a Shipmate backup manifest"),
    (b'{"kind": "shipmate-backup", "format": 99}', "format 99"),
    (b'{"kind": "shipmate-backup", "format": 1}', "missing or of the wrong type")])
def test_a_bad_manifest_is_refused(tmp_path: Path, files: dict[str, bytes], text: bytes,
                                   why: str) -> None:
    report = archive.verify(_tar(tmp_path / "b.tar.gz", text, files))
    assert report.manifest is None and why in report.problems[0]


def test_an_archive_without_manifest(tmp_path: Path, files: dict[str, bytes]) -> None:
    report = archive.verify(_tar(tmp_path / "n.tar.gz", None, files))
    assert report.problems == ("no manifest.json in the archive",)


def test_member_names_outside_the_layout_are_unsafe(tmp_path: Path) -> None:
    for name in ("store.json", "repos/web.bundle", "ca/ca.crt", "ca/etcd/peer.key",
                 "keys/ssh_host_ed25519_key",
                 "services/redis/cache.dump"):
        assert allowed_name(name), name
    for name in ("../x", "/etc/passwd", "repos/../x.bundle", "ca/../../etc", "repos/Web.bundle",
                 "services/mysql/x.dump", "other.txt", "ca/", "keys/id_rsa"):
        assert not allowed_name(name), name
    manifest = Manifest("v", "t", 1, "m", (Member("../evil", 1, "0"),))
    assert problems(manifest, {}) == ["the manifest lists no store.json (the store snapshot)",
                                      "../evil: not a name a Shipmate backup holds"]
    evil = _tar(tmp_path / "e.tar.gz", _manifest({"store.json": b"{}"}).to_json(),
                {"store.json": b"{}", "../evil": b"x"})
    assert archive.verify(evil).problems == ("../evil: not a file a Shipmate backup holds",)


def test_manifest_round_trip() -> None:
    m = _manifest({"store.json": b"{}"})
    assert Manifest.from_json(m.to_json()) == m
