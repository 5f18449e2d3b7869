"""Backup and restore of a whole platform with a real daemon, real pushes and real nginx:
two deployed apps (one with config set and a file it wrote to its storage mount, one with a
domain of its own) are backed up; the daemon stops and its containers and storage go; a
daemon on a fresh state dir restores the archive, and both apps answer again with the same
config and the same release numbers, the file back in the mount with its mode and owner. A
truncated archive fails ``backup verify`` with a message saying so."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.paas_helpers import (
    PaasDaemon,
    head,
    remove_app_containers,
    unique,
    work_tree,
)
from tests.integration.paas_helpers import run as sh

pytestmark = pytest.mark.integration
DOMAIN2 = "two.backup.test"


@pytest.fixture
def bases() -> Iterator[list[Path]]:
    """Temporary base directories (each holds a daemon's state dir), removed afterwards."""
    made: list[Path] = []
    yield made
    for base in made:
        shutil.rmtree(base, ignore_errors=True)


def _daemon(bases: list[Path], prefix: str) -> PaasDaemon:
    base = Path(tempfile.mkdtemp(prefix=prefix))
    bases.append(base)
    (base / "state").mkdir()
    daemon = PaasDaemon(base / "state")
    daemon.up()
    return daemon


def _facts(d: PaasDaemon, app: str) -> tuple[list[int], dict[str, str], str]:
    releases = json.loads(d.ok("releases", app, "--format", "json"))
    config = json.loads(d.ok("config:show", app, "--format", "json"))
    vhosts = d.ok("domains:report", app, "--domains-app-vhosts")
    return [r["version"] for r in releases], config, vhosts


def _one_container(d: PaasDaemon, app: str, not_id: str = "", timeout: float = 60) -> str:
    """The ID of the app's single running container (other than ``not_id``)."""
    deadline = time.monotonic() + timeout
    while True:
        found = d.containers(app)
        if len(found) == 1 and found[0]["Id"] != not_id:
            return str(found[0]["Id"])
        assert time.monotonic() < deadline, f"{len(found)} containers of {app}"
        time.sleep(0.3)


def _write_to_mount(d: PaasDaemon, app: str) -> Path:
    """Mount a storage directory into ``app`` and have its container write a file there;
    the file's path on the host."""
    d.ok("storage:ensure-directory", app)
    d.ok("storage:mount", app, f"{app}:/app/storage")
    first = _one_container(d, app)
    d.ok("ps:restart", app)  # applies the mount now
    cid = _one_container(d, app, not_id=first)
    wrote = sh(["docker", "exec", cid, "sh", "-c",
                "echo kept > /app/storage/file && chmod 640 /app/storage/file"])
    assert wrote.returncode == 0, wrote.stderr
    return d.state_dir / "storage" / app / "file"


def _stop(d: PaasDaemon, apps: list[str]) -> None:
    d.cli("down", timeout=60)
    for app in apps:
        remove_app_containers(app)


def test_backup_then_restore_on_a_fresh_machine(tmp_path: Path, bases: list[Path]) -> None:
    one, two = unique("bk-one"), unique("bk-two")
    tree = work_tree(tmp_path / "tree")
    old = _daemon(bases, "shipmate-backup-old-")
    new: PaasDaemon | None = None
    try:
        for app in (one, two):
            res = old.push(tree, app)
            assert res.returncode == 0, res.stderr[-3000:]
        old.ok("config:set", one, "GREETING=Restored greeting", "EXTRA=kept exactly")
        old.ok("domains:add", two, DOMAIN2)
        old.wait_page(one, "Restored greeting")
        old.wait_page(two, head(tree)[:7])
        before = {app: _facts(old, app) for app in (one, two)}
        assert before[one][0] == [1, 2] and before[two][0] == [1]
        written = _write_to_mount(old, one)
        owner = os.stat(written)

        archive = tmp_path / "platform.tar.gz"
        made = old.ok("backup", "create", str(archive), timeout=300)
        assert "Backup written" in made and f"Storage {one} copied (1 file(s), 5 bytes)" in made
        verified = json.loads(old.ok("backup", "verify", str(archive), "--format", "json"))
        assert verified["ok"] and sorted(verified["manifest"]["apps"]) == sorted([one, two])
        assert verified["manifest"]["storage"] == [{"name": one, "files": 1, "bytes": 5}]
        _stop(old, [one, two])
        shutil.rmtree(written.parent)  # the data is gone from here: only the archive has it

        new = _daemon(bases, "shipmate-backup-new-")
        restored = new.cli("backup", "restore", str(archive), timeout=900)
        assert restored.returncode == 0, restored.stdout[-4000:] + restored.stderr
        assert "everything in the archive was restored" in restored.stdout
        for app in (one, two):
            assert _facts(new, app) == before[app], app
        new.wait_page(one, "Restored greeting")
        back = new.state_dir / "storage" / one / "file"  # the new machine's storage root
        assert back.read_text() == "kept\n"
        st = os.stat(back)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == \
            (0o640, owner.st_uid, owner.st_gid)
        assert [m["host_path"] for m in json.loads(
            new.ok("storage:list", one, "--format", "json"))] == [str(back.parent)]
        read = sh(["docker", "exec", _one_container(new, one), "cat", "/app/storage/file"])
        assert read.stdout == "kept\n", read.stderr
        status, body = new.get(two, host=DOMAIN2)
        assert status == 200 and head(tree)[:7] in body, body
        # the SSH keys are the archive's (the old machine's key works, the new one's name was
        # taken over) and the restored repository answers over git as before
        res = sh(["git", "ls-remote", new.remote(one)], env=new.git_env(old.key))
        assert res.returncode == 0, res.stderr
        assert f"{head(tree)}\trefs/heads/main" in res.stdout.splitlines()

        again = new.cli("backup", "restore", str(archive))
        assert again.returncode == 1 and "not empty" in again.stderr, again.stderr

        cut = tmp_path / "cut.tar.gz"
        cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
        bad = new.cli("backup", "verify", str(cut))
        assert bad.returncode == 1
        assert "truncated or damaged" in bad.stderr and "NOT a sound backup" in bad.stderr
    finally:
        for d in (new, old):
            if d is not None:
                d.apps |= {one, two}
                d.down()


def _service_cleanup(kind: str, name: str) -> None:
    sh(["docker", "rm", "-f", f"shipmate-{kind}-{name}"])
    sh(["docker", "volume", "rm", "-f", f"shipmate-{kind}-{name}-data"])
    sh(["docker", "network", "rm", f"shipmate-svc-{kind}-{name}"])


def test_services_come_back_with_their_data(bases: list[Path]) -> None:
    pg, kv = unique("bkdb"), unique("bkkv")
    old = _daemon(bases, "shipmate-backup-svc-old-")
    new: PaasDaemon | None = None
    try:
        old.ok("postgres:create", pg, timeout=900)
        old.ok("redis:create", kv, timeout=900)
        sql = "CREATE TABLE t (n int, s text); INSERT INTO t VALUES (1, 'one'), (2, 'two');\n"
        assert old.cli("postgres:connect", pg, input=sql, timeout=120).returncode == 0
        assert old.cli("redis:connect", kv, input="SET greeting ahoy\n").returncode == 0
        dsn = old.ok("postgres:info", pg, "--dsn")
        archive = bases[0] / "services.tar.gz"
        made = old.ok("backup", "create", str(archive), timeout=300)
        assert f"postgres:{pg} dumped" in made and f"redis:{kv} dumped" in made, made
        old.cli("down", timeout=60)
        for kind, name in (("postgres", pg), ("redis", kv)):  # the data is gone from here
            _service_cleanup(kind, name)

        new = _daemon(bases, "shipmate-backup-svc-new-")
        restored = new.cli("backup", "restore", str(archive), timeout=900)
        assert restored.returncode == 0, restored.stdout[-4000:] + restored.stderr
        assert new.ok("postgres:info", pg, "--dsn") == dsn  # linked apps' URLs stay right
        rows = new.cli("postgres:connect", pg, input="SELECT n, s FROM t ORDER BY n;\n")
        assert rows.returncode == 0 and "1 | one" in rows.stdout and "2 | two" in rows.stdout, \
            rows.stdout + rows.stderr
        got = new.cli("redis:connect", kv, input="GET greeting\n")
        assert got.returncode == 0 and got.stdout.strip() == "ahoy", got.stdout + got.stderr
    finally:
        for d in (new, old):
            if d is not None:
                d.down()
        for kind, name in (("postgres", pg), ("redis", kv)):
            _service_cleanup(kind, name)
