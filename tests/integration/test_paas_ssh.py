"""The SSH front door: only added keys get in; the CLI works over SSH; unsafe app names are
refused with Dokku's message before anything is created (by the CLI and by git push)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.paas_helpers import (
    PaasDaemon,
    make_key,
    paas,
    unique,
    work_tree,
)

pytestmark = pytest.mark.integration
__all__ = ["paas"]  # the fixture, imported for pytest

DOKKU_NAME_MESSAGE = ("App name must begin with lowercase alphanumeric character, and cannot "
                      "include uppercase characters, colons, or underscores")
BAD_NAMES = ["test;id", "../x", "TestApp", "a/b", ".x", "app_1", "app:1"]


def _apps(paas: PaasDaemon) -> set[str]:
    return {a["name"] for a in json.loads(paas.ok("apps:list", "--format", "json"))}


def _repos(paas: PaasDaemon) -> set[str]:
    root = paas.state_dir / "repos"
    return {p.name for p in root.iterdir()} if root.exists() else set()


def test_cli_over_ssh_for_a_known_key(paas: PaasDaemon) -> None:
    app = unique("viassh")
    paas.apps.add(app)
    res = paas.ssh("apps:create", app)
    assert res.returncode == 0, res.stderr
    assert f"-----> Creating {app}..." in res.stdout
    res = paas.ssh("apps:list")
    assert res.returncode == 0 and res.stdout.startswith("=====> My Apps\n")
    assert app in res.stdout.splitlines()
    res = paas.ssh("apps:report", app, "--app-locked")
    assert (res.returncode, res.stdout) == (0, "false\n")
    res = paas.ssh("apps:list", "--format", "json")
    assert app in [a["name"] for a in json.loads(res.stdout)]
    # Errors keep Dokku's form and exit code over SSH.
    res = paas.ssh("apps:report", "no-such-app")
    assert res.returncode == 1 and res.stderr.startswith(" !     App no-such-app does not exist")
    res = paas.ssh("down")
    assert res.returncode == 1 and "only be run on the machine itself" in res.stderr
    # Not through global options either (ssh's "--" ends its own options).
    for argv in (["--format", "json", "down"], ["--debug", "down"],
                 ["--state-dir", "/tmp", "up"]):
        res = paas.ssh("--", *argv)
        assert res.returncode == 1 and res.stderr.startswith(" !     "), (argv, res.stderr)
    res = paas.ssh("--", "--format", "json", "apps:list")
    assert res.returncode == 0 and app in [a["name"] for a in json.loads(res.stdout)]
    assert paas.ssh("apps:list").returncode == 0  # the daemon is still up


def test_unknown_key_is_refused_and_creates_nothing(paas: PaasDaemon, tmp_path: Path) -> None:
    stranger = make_key(tmp_path, "stranger")
    before_apps, before_repos = _apps(paas), _repos(paas)
    res = paas.ssh("apps:list", key=stranger)
    assert res.returncode != 0 and "Permission denied" in res.stderr
    assert res.stdout == ""
    app = unique("stranger")
    paas.apps.add(app)
    push = paas.push(work_tree(tmp_path / "tree"), app, key=stranger)
    assert push.returncode != 0 and "Permission denied" in push.stderr
    assert _apps(paas) == before_apps and _repos(paas) == before_repos


def test_ssh_keys_add_list_remove(paas: PaasDaemon, tmp_path: Path) -> None:
    other = make_key(tmp_path, "colleague")
    pub = Path(str(other) + ".pub").read_text()
    added = paas.cli("ssh-keys:add", "colleague", "-", input=pub)
    assert added.returncode == 0 and added.stdout.startswith("SHA256:"), added.stderr
    fingerprint = added.stdout.strip()
    keys = json.loads(paas.ok("ssh-keys:list", "--format", "json"))
    assert {"name": "colleague", "fingerprint": fingerprint, "admin": False} in keys
    assert paas.ssh("apps:list", key=other).returncode == 0
    again = paas.cli("ssh-keys:add", "colleague2", "-", input=pub)
    assert again.returncode == 1 and "Duplicate ssh public key" in again.stderr
    junk = paas.cli("ssh-keys:add", "junk", "-", input="not a key\n")
    assert junk.returncode == 1 and junk.stderr.startswith(" !     Invalid public key")
    paas.ok("ssh-keys:remove", "colleague")
    assert "colleague" not in paas.ok("ssh-keys:list")
    res = paas.ssh("apps:list", key=other)
    assert res.returncode != 0 and "Permission denied" in res.stderr


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_app_names_are_refused_by_the_cli(paas: PaasDaemon, name: str) -> None:
    before_apps, before_repos = _apps(paas), _repos(paas)
    res = paas.cli("apps:create", name)
    assert res.returncode == 1
    assert res.stderr.startswith(f" !     {DOKKU_NAME_MESSAGE}"), res.stderr
    res = paas.ssh("apps:create", name)
    assert res.returncode == 1 and DOKKU_NAME_MESSAGE in res.stderr, res.stderr
    assert _apps(paas) == before_apps and _repos(paas) == before_repos


@pytest.mark.parametrize("name", ["test;id", "../x", "TestApp", "a/b"])
def test_bad_app_names_are_refused_by_git_push(paas: PaasDaemon, tmp_path: Path,
                                               name: str) -> None:
    before_apps, before_repos = _apps(paas), _repos(paas)
    tree = work_tree(tmp_path / "tree")
    res = paas.push(tree, name)
    paas.apps.discard(name)
    assert res.returncode != 0
    assert DOKKU_NAME_MESSAGE in res.stderr, res.stderr
    assert _apps(paas) == before_apps and _repos(paas) == before_repos
    # Nothing was written outside the repos dir either (../x would land beside it).
    assert not (paas.state_dir / "x.git").exists() and not (paas.state_dir / "x").exists()
