"""A real Shipmate daemon with the router, SSH and the package cache for PaaS tests and
benchmarks: free ports, a fresh state dir, an SSH key, and helpers that push with real git over
real SSH and request through the real nginx.

Tests use the ``paas`` fixture (module scoped: one daemon per test file, distinct app names per
test). Benchmarks use :class:`PaasDaemon` directly.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.integration.daemon_helpers import daemon_env, pids_of_daemon, wait_status

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "node-js-app"
DOMAIN = "shipmate.test"
GIT_ENV = {"GIT_AUTHOR_NAME": "Shipmate Test", "GIT_AUTHOR_EMAIL": "test@shipmate.test",
           "GIT_COMMITTER_NAME": "Shipmate Test", "GIT_COMMITTER_EMAIL": "test@shipmate.test",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}


def unique(prefix: str) -> str:
    """An app name no other test (or earlier run) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def run(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """A subprocess with captured text output and a bound on its time."""
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, input=input)


def make_key(directory: Path, name: str = "id_ed25519") -> Path:
    """A new passphrase-less ed25519 key pair; returns the private key's path."""
    path = directory / name
    res = run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)])
    assert res.returncode == 0, res.stderr
    return path


class PaasDaemon:
    """One daemon (router + SSH + cache) on free ports in its own state dir."""

    def __init__(self, state_dir: Path, *, cache: bool = True) -> None:
        self.state_dir = state_dir
        self.http_port, self.ssh_port = free_port(), free_port()
        extra = {"SHIPMATE_MACHINE_ID": unique("paas"), "SHIPMATE_HTTP_PORT": str(self.http_port),
                 "SHIPMATE_SSH_PORT": str(self.ssh_port), "SHIPMATE_ROUTER": "1",
                 "SHIPMATE_SSH": "1", "SHIPMATE_CACHE": "1" if cache else "0"}
        if cache:
            extra["SHIPMATE_CACHE_PORT"] = str(free_port())
        self.env = daemon_env(state_dir, **extra)
        self.key = make_key(state_dir.parent if state_dir.parent.exists() else state_dir)
        self.apps: set[str] = set()

    # lifecycle ------------------------------------------------------------------------------

    def up(self) -> None:
        """Base images (idempotent), the daemon, the global domain and the SSH key."""
        boot = self.cli("images:bootstrap", timeout=900)
        assert boot.returncode == 0, boot.stdout + boot.stderr
        started = self.cli("up")
        assert started.returncode == 0, started.stdout + started.stderr
        wait_status(self.env, timeout=60)
        self.ok("domains:set-global", DOMAIN)
        self.ok("ssh-keys:add", "tester", str(self.key) + ".pub")
        self._wait_ssh()

    def _wait_ssh(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            res = self.ssh("apps:list", timeout=20)
            if res.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"ssh never answered: {res.stderr}")
            time.sleep(0.3)

    def down(self) -> None:
        """Destroy the apps made through this daemon, then stop it."""
        for app in sorted(self.apps):
            self.cli("apps:destroy", app, "--force", timeout=60)
        res = self.cli("down", timeout=60)
        # Leftover containers (a test that failed half-way) must not outlive the run.
        for app in sorted(self.apps):
            remove_app_containers(app)
        assert res.returncode == 0, res.stdout + res.stderr
        assert pids_of_daemon(self.state_dir) == []

    # the CLI, SSH and git -----------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 180, input: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        """``shipmate ARGS`` on this machine."""
        return run([sys.executable, "-m", "shipmate.cli.main", *args], env=self.env,
                   timeout=timeout, input=input)

    def ok(self, *args: str, timeout: float = 180) -> str:
        """``shipmate ARGS`` that must succeed; its stdout."""
        res = self.cli(*args, timeout=timeout)
        assert res.returncode == 0, f"shipmate {' '.join(args)}: {res.stdout}{res.stderr}"
        return res.stdout

    def ssh_command(self, key: Path | None = None) -> str:
        """The GIT_SSH_COMMAND for a key (ours by default)."""
        return (f"ssh -i {key or self.key} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no "
                "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes")

    def ssh(self, *args: str, key: Path | None = None, timeout: float = 180
            ) -> subprocess.CompletedProcess[str]:
        """``ssh shipmate@127.0.0.1 -p PORT ARGS``."""
        return run([*self.ssh_command(key).split(), "-p", str(self.ssh_port),
                    "shipmate@127.0.0.1", *args], timeout=timeout)

    def remote(self, app: str) -> str:
        """The git remote URL of an app."""
        return f"ssh://shipmate@127.0.0.1:{self.ssh_port}/{app}"

    def git_env(self, key: Path | None = None) -> dict[str, str]:
        """Environment for git commands that talk to this daemon."""
        return {**os.environ, **GIT_ENV, "GIT_SSH_COMMAND": self.ssh_command(key)}

    def push(self, tree: Path, app: str, *, ref: str = "main", key: Path | None = None,
             force: bool = False, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``git push ssh://...APP HEAD:ref``; remembers the app for clean-up."""
        self.apps.add(app)
        argv = ["git", "push", *(["--force"] if force else []), self.remote(app),
                f"HEAD:refs/heads/{ref}"]
        return run(argv, env=self.git_env(key), cwd=tree, timeout=timeout)

    def ls_remote(self, app: str) -> dict[str, str]:
        """``git ls-remote``: ref -> sha."""
        res = run(["git", "ls-remote", self.remote(app)], env=self.git_env(), timeout=60)
        assert res.returncode == 0, res.stderr
        return {ref: sha for sha, ref in (ln.split("\t") for ln in res.stdout.splitlines())}

    # the router --------------------------------------------------------------------------------

    def get(self, app: str, path: str = "/", timeout: float = 10, host: str = "",
            port: int = 0) -> tuple[int, str]:
        """GET through the router with ``Host: APP.DOMAIN`` (or ``host``), on its HTTP port
        (or an app's own ``port``): (status, body)."""
        req = urllib.request.Request(f"http://127.0.0.1:{port or self.http_port}{path}",
                                     headers={"Host": host or f"{app}.{DOMAIN}"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError as exc:
            return 0, str(exc)

    def wait_page(self, app: str, text: str, timeout: float = 30) -> str:
        """Wait until the app's page contains ``text``; the page."""
        deadline = time.monotonic() + timeout
        while True:
            status, body = self.get(app)
            if status == 200 and text in body:
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"{app} never served {text!r}: {status} {body[:300]}")
            time.sleep(0.2)

    def nginx_conf(self) -> str:
        """The rendered nginx configuration."""
        path = self.state_dir / "nginx" / "conf" / "nginx.conf"
        return path.read_text() if path.exists() else ""

    def upstream(self, app: str) -> list[str]:
        """The ``server`` lines of the app's upstream block in the rendered config."""
        match = re.search(r"upstream shipmate_app_" + re.escape(app) + r" \{(.*?)\}",
                          self.nginx_conf(), re.S)
        if not match:
            return []
        return re.findall(r"^\s*server (\S+)", match.group(1), re.M)

    def wait_upstream(self, app: str, count: int, timeout: float = 30) -> list[str]:
        """Wait until the app's upstream has ``count`` servers."""
        deadline = time.monotonic() + timeout
        while True:
            servers = self.upstream(app)
            if len(servers) == count:
                return servers
            if time.monotonic() > deadline:
                raise AssertionError(f"upstream of {app}: {servers}, wanted {count}")
            time.sleep(0.2)

    def containers(self, app: str) -> list[dict[str, object]]:
        """``docker inspect`` of the app's running instance containers."""
        return inspect_app_containers(app)

    def wait_containers(self, app: str, count: int, timeout: float = 30
                        ) -> list[dict[str, object]]:
        """Wait until ``count`` instance containers run (old ones retire after a drain)."""
        deadline = time.monotonic() + timeout
        while True:
            found = inspect_app_containers(app)
            if len(found) == count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} containers of {app} run, wanted {count}")
            time.sleep(0.3)


def app_container_ids(app: str, *, all_: bool = True) -> list[str]:
    """IDs of containers labelled with the app (instances and one-off runs)."""
    ids: list[str] = []
    for label in (f"shipmate.app={app}", f"shipmate.one-off={app}"):
        res = run(["docker", "ps", "-q", *(["-a"] if all_ else []), "--filter", f"label={label}"])
        ids += res.stdout.split()
    return ids


def inspect_app_containers(app: str) -> list[dict[str, object]]:
    """``docker inspect`` of the app's running containers."""
    ids = run(["docker", "ps", "-q", "--filter", f"label=shipmate.app={app}"]).stdout.split()
    if not ids:
        return []
    data: list[dict[str, object]] = json.loads(run(["docker", "inspect", *ids]).stdout)
    return data


def container_env(info: dict[str, object]) -> dict[str, str]:
    """A ``docker inspect`` record's environment as a dict."""
    config = info["Config"]
    assert isinstance(config, dict)
    return dict(item.partition("=")[::2] for item in config["Env"] or [])


def remove_app_containers(app: str) -> None:
    """Remove every container of the app (test clean-up)."""
    ids = app_container_ids(app)
    if ids:
        run(["docker", "rm", "-f", *ids], timeout=60)


def work_tree(dest: Path, source: Path = EXAMPLE) -> Path:
    """A git work tree holding a copy of ``source`` with one commit on ``main``."""
    shutil.copytree(source, dest)
    env = {**os.environ, **GIT_ENV}
    for argv in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                 ["git", "commit", "-q", "-m", "initial"]):
        res = run(argv, env=env, cwd=dest)
        assert res.returncode == 0, res.stderr
    return dest


def commit(tree: Path, message: str, files: dict[str, str | None]) -> str:
    """Write (or delete, with None) files in ``tree`` and commit; returns the new sha."""
    for name, text in files.items():
        if text is None:
            (tree / name).unlink(missing_ok=True)
        else:
            (tree / name).write_text(text)
    env = {**os.environ, **GIT_ENV}
    for argv in (["git", "add", "-A"], ["git", "commit", "-q", "--allow-empty", "-m", message]):
        res = run(argv, env=env, cwd=tree)
        assert res.returncode == 0, res.stderr
    return head(tree)


def head(tree: Path) -> str:
    """The sha of HEAD."""
    return run(["git", "rev-parse", "HEAD"], cwd=tree).stdout.strip()


@contextlib.contextmanager
def running_daemon(prefix: str, *, cache: bool = True,
                   env: dict[str, str] | None = None) -> Iterator[PaasDaemon]:
    """A daemon in a fresh temporary state dir, with ``env`` added to its settings; stopped,
    with its apps destroyed, and its files removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    (base / "state").mkdir()
    daemon = PaasDaemon(base / "state", cache=cache)
    daemon.env.update(env or {})
    try:
        daemon.up()
        yield daemon
    finally:
        try:
            daemon.down()
        finally:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def paas() -> Iterator[PaasDaemon]:
    """A running daemon for a test module; stopped, with its apps destroyed, afterwards."""
    with running_daemon("shipmate-paas-") as daemon:
        yield daemon
