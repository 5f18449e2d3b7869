"""Issue 23's reproductions against a real daemon with the real ssh client, now failing for
the attacker: the SSH chain to root, reading a 0600 file through an error, a password in the
daemon log, weak keys and other users, malformed pushes (docs/security.md)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from tests.integration.paas_helpers import (
    PaasDaemon,
    commit,
    run,
    running_daemon,
    unique,
    work_tree,
)

pytestmark = pytest.mark.integration
PUSH_MAX = 2**20
UNIT = "[Unit]\nDescription=probe\n\n[Service]\nExecStart=/bin/sleep 1000\n"
RECIPE = "docker_image 'nginx' do\n  tag '1.25'\nend\n"


@pytest.fixture(scope="module")
def daemon() -> Iterator[PaasDaemon]:
    """A daemon with a small push limit (1 MiB), so the limit's message can be seen."""
    with running_daemon("shipmate-sec-", cache=False,
                        env={"SHIPMATE_PUSH_MAX_BYTES": str(PUSH_MAX)}) as d:
        yield d


def _ssh(d: PaasDaemon, *args: str, input: str | None = None, user: str = "shipmate",
         key: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run([*d.ssh_command(key).split(), "-p", str(d.ssh_port), f"{user}@127.0.0.1", *args],
               timeout=120, input=input if input is not None else "")


def _refused(res: subprocess.CompletedProcess[str], words: str) -> None:
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert res.stderr.startswith(" !     ") and words in res.stderr, res.stderr
    assert "Traceback" not in res.stderr + res.stdout


def _unit_files(d: PaasDaemon) -> set[str]:
    return {u["unit"] for u in json.loads(d.ok("fleet", "list-unit-files", "--format", "json"))}


def test_the_ssh_chain_to_root_is_refused(daemon: PaasDaemon, tmp_path: Path) -> None:
    drop = tmp_path / "d"
    drop.mkdir()
    (drop / "x.yaml").write_text("containers:\n  x:\n    image: shipmate/base:bookworm\n"
                                 "    volumes: ['/:/host']\n")
    (drop / "x.service").write_text(UNIT.replace("sleep 1000", "touch /tmp/pwned"))
    # 1. import writes where the caller says
    res = _ssh(daemon, "import", "chef", "/dev/stdin", "-o", str(drop / "out.yaml"),
               input=RECIPE)
    _refused(res, "reads from standard input and prints the manifest")
    assert not (drop / "out.yaml").exists()
    # 2. apply starts a container with a host directory mounted
    _refused(_ssh(daemon, "apply", str(drop / "x.yaml"), "--yes"),
             "`apply` can only be run on the machine itself")
    _refused(_ssh(daemon, "plan", str(drop / "x.yaml")), "only be run on the machine itself")
    # 3. fleet start of a server path runs its ExecStart as root
    before = _unit_files(daemon)
    _refused(_ssh(daemon, "fleet", "start", str(drop / "x.service")), "not paths")
    _refused(_ssh(daemon, "fleet", "submit", str(drop / "x.service")),
             "does not read files on the server")
    assert _unit_files(daemon) == before and "x.service" not in before
    # 4. the host's own management
    for argv in (["cluster", "up"], ["cluster", "kill", "node-1"], ["images:bootstrap"],
                 ["cache", "gc"], ["down"], ["--state-dir", "/tmp", "apps:list"]):
        res = _ssh(daemon, "--", *argv)
        assert res.returncode == 1 and res.stderr.startswith(" !     "), (argv, res.stderr)


def test_files_come_on_standard_input_over_ssh(daemon: PaasDaemon) -> None:
    res = _ssh(daemon, "import", "chef", "--name", "web", input=RECIPE)
    assert res.returncode == 0, res.stderr
    assert "name: web\n" in res.stdout and "nginx:1.25" in res.stdout
    name = f"{unique('probe')}.service"
    res = _ssh(daemon, "fleet", "submit", name, input=UNIT)
    assert (res.returncode, res.stdout) == (0, f"Unit {name} inactive\n"), res.stderr
    try:
        assert _ssh(daemon, "fleet", "cat", name).stdout == UNIT
    finally:
        daemon.ok("fleet", "destroy", name)
    raw = subprocess.run([*daemon.ssh_command().split(), "-p", str(daemon.ssh_port),
                          "shipmate@127.0.0.1", "fleet", "submit", "latin1.service"],
                         input=b"[Service]\nExecStart=/bin/caf\xe9\n", capture_output=True,
                         timeout=60)
    assert raw.returncode == 1
    assert raw.stderr.decode() == (" !     the unit file of latin1.service is not UTF-8 text "
                                   "(byte 28)\n !     save the file as UTF-8\n")


def test_a_0600_file_cannot_be_read_through_an_error(daemon: PaasDaemon, tmp_path: Path) -> None:
    secret = tmp_path / "shadow"
    secret.write_text("".join(f"root{i}:$y$j9T$SECRETHASH{i}:19000:0:99999:7:::\n"
                              for i in range(5)))
    secret.chmod(0o600)
    for argv in (["fleet", "submit", str(secret)], ["fleet", "start", str(secret)],
                 ["ssh-keys:add", "x", str(secret)], ["import", "puppet", str(secret)]):
        res = _ssh(daemon, *argv)
        assert res.returncode == 1 and "SECRETHASH" not in res.stdout + res.stderr, argv
    # What the caller sends itself is echoed at most one line.
    res = _ssh(daemon, "fleet", "submit", "leak.service", input=secret.read_text())
    assert res.returncode == 1 and res.stderr.startswith(" !     ")
    assert (res.stdout + res.stderr).count("SECRETHASH") <= 1


def test_a_password_set_over_ssh_is_not_logged_and_files_are_private(daemon: PaasDaemon
                                                                     ) -> None:
    app = unique("secret")
    daemon.apps.add(app)
    assert _ssh(daemon, "apps:create", app).returncode == 0
    password = "hunter2-" + unique("pw")
    res = _ssh(daemon, "config:set", "--no-restart", app, f"DB_PASSWORD={password}")
    assert res.returncode == 0, res.stderr
    assert password not in res.stdout + res.stderr and "DB_PASSWORD" in res.stdout
    assert _ssh(daemon, "config:get", app, "DB_PASSWORD").stdout == password + "\n"
    encoded = _ssh(daemon, "config:set", "--no-restart", "--encoded", app, "X=%%%")
    _refused(encoded, "X: the value is not valid base64 of UTF-8 text")
    log = daemon.state_dir / "daemon.log"
    text = log.read_text()
    assert "DB_PASSWORD=<redacted>" in text and password not in text
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(daemon.state_dir.stat().st_mode) == 0o711  # nginx workers pass through
    assert stat.S_IMODE((daemon.state_dir / "store.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((daemon.state_dir / "agent").stat().st_mode) == 0o700


def test_repositories_are_private(daemon: PaasDaemon, tmp_path: Path) -> None:
    app = unique("private")
    tree = work_tree(tmp_path / "tree")
    commit(tree, "no builder", {"package.json": None, "server.js": None, "Procfile": None,
                                "app.json": None, "README": "nothing to build\n"})
    daemon.push(tree, app)  # fails at detection; the repository is made all the same
    repos = daemon.state_dir / "repos"
    assert stat.S_IMODE(repos.stat().st_mode) == 0o700
    for path in [repos, *repos.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode & 0o077 == 0, (path, oct(mode))


def test_only_the_shipmate_user_and_strong_keys_get_in(daemon: PaasDaemon,
                                                       tmp_path: Path) -> None:
    res = _ssh(daemon, "apps:list", user="root")
    assert res.returncode != 0 and "Permission denied" in res.stderr
    weak = tmp_path / "weak"
    assert run(["ssh-keygen", "-q", "-t", "rsa", "-b", "1024", "-N", "", "-f",
                str(weak)]).returncode == 0
    pub = Path(f"{weak}.pub").read_text()
    _refused(_ssh(daemon, "ssh-keys:add", "weak", input=pub),
             "RSA keys need at least 2048 bits, this one has 1024")
    # A weak key stored by an older Shipmate is refused at auth.
    fingerprint = run(["ssh-keygen", "-l", "-E", "sha256", "-f", f"{weak}.pub"]).stdout.split()[1]
    record = json.dumps({"name": "weak", "key": pub.strip(), "fingerprint": fingerprint})
    put = run(["curl", "-sf", "--unix-socket", str(daemon.state_dir / "shipmate.sock"), "-X",
               "PUT", "--data-binary", record, "http://d/v1/kv/shipmate/ssh-keys/weak"])
    assert put.returncode == 0, put.stderr
    try:
        res = _ssh(daemon, "apps:list", key=weak)
        assert res.returncode != 0 and "Permission denied" in res.stderr
    finally:
        daemon.ok("ssh-keys:remove", "weak")
    good = tmp_path / "good"
    assert run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(good)]).returncode == 0
    added = _ssh(daemon, "ssh-keys:add", "good", input=Path(f"{good}.pub").read_text())
    assert added.returncode == 0 and added.stdout.startswith("SHA256:"), added.stderr
    try:
        assert _ssh(daemon, "apps:list", key=good).returncode == 0
    finally:
        daemon.ok("ssh-keys:remove", "good")


async def _asyncssh_run(daemon: PaasDaemon, command: str) -> asyncssh.SSHCompletedProcess:
    async with asyncssh.connect("127.0.0.1", daemon.ssh_port, username="shipmate",
                                client_keys=[str(daemon.key)], known_hosts=None) as conn:
        return await conn.run(command, check=False)


def test_a_nul_in_an_ssh_command_is_one_line(daemon: PaasDaemon) -> None:
    res = asyncio.run(_asyncssh_run(daemon, "apps:list\0--debug"))
    assert res.exit_status == 1
    assert res.stderr == (" !     the command contains a NUL byte\n"
                          " !     arguments cannot contain NUL; send data on standard input\n")


def test_malformed_pushes_get_one_clear_line(daemon: PaasDaemon, tmp_path: Path) -> None:
    app = unique("pushes")
    tree = work_tree(tmp_path / "tree")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    # A tree entry named `..` (git itself never makes one; a hostile client can).
    blob = run(["git", "hash-object", "-w", "package.json"], cwd=tree).stdout.strip()
    bad_tree = run(["git", "mktree"], cwd=tree, input=f"100644 blob {blob}\t..\n").stdout.strip()
    bad = run(["git", "commit-tree", bad_tree, "-p", "HEAD", "-m", "dotdot"], cwd=tree,
              env=env).stdout.strip()
    run(["git", "update-ref", "HEAD", bad], cwd=tree)
    res = daemon.push(tree, app)
    assert res.returncode != 0 and "hasDotdot" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and str(daemon.state_dir) not in res.stderr
    # Over push_max_bytes: the setting is named.
    tree2 = work_tree(tmp_path / "tree2")
    (tree2 / "blob.bin").write_bytes(os.urandom(PUSH_MAX + PUSH_MAX // 2))
    commit(tree2, "big", {})
    res = daemon.push(tree2, app, force=True)
    assert res.returncode != 0
    assert "the pushed tree is larger than push_max_bytes (1 MiB)" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and "413" not in res.stderr
