"""git push for real: over SSH to the daemon, built, health-gated, routed by nginx.

One daemon for the module (router, SSH, package cache on free ports); each test pushes its own
app. Covers: the example app answers by its name with PORT/DYNO/GIT_REV set; a failed build
rejects the push and keeps the old release; a failing health check is never switched to; a
locked app refuses pushes; apps:destroy removes containers, units and the repository.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.integration.paas_helpers import (
    PaasDaemon,
    app_container_ids,
    commit,
    container_env,
    head,
    paas,
    run,
    unique,
    work_tree,
)

pytestmark = pytest.mark.integration
__all__ = ["paas"]  # the fixture, imported for pytest


def _deploy(paas: PaasDaemon, tree: Path, app: str) -> str:
    res = paas.push(tree, app)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stderr


def _running(app: str) -> int:
    return len(app_container_ids(app, all_=False))


def test_push_of_the_example_app_serves_it_with_port_dyno_and_git_rev(paas: PaasDaemon,
                                                                     tmp_path: Path) -> None:
    tree, app = work_tree(tmp_path / "tree"), unique("hello")
    out = _deploy(paas, tree, app)
    # Dokku's output, streamed to the pusher (git shows it as remote: lines on stderr).
    for line in (f"-----> Creating {app}...", f"-----> Building {app} (revision ",
                 "-----> Node.js app detected", "-----> Health checks passed",
                 "=====> Application deployed: v1",
                 f"http://{app}.shipmate.test:{paas.http_port}"):
        assert line in out, line
    body = paas.wait_page(app, "Hello from Shipmate")
    assert f"revision {head(tree)[:7]}" in body and "Served by web.1" in body
    # Each step says how long it took, and the release record keeps the breakdown.
    for step in (r"-----> Build done \(\d+\.\d s\)", r"instance\(s\) running \(\d+\.\d s\)",
                 r"Health checks passed \(\d+\.\d s\)", r"Switched traffic to v1 \(\d+\.\d s\)",
                 r"Application deployed: v1 in \d+\.\d s: build "):
        assert re.search(step, out), step
    (release,) = json.loads(paas.ok("releases", app, "--format", "json"))
    timings = release["timings"]
    assert set(timings) == {"build", "start", "checks", "switch", "total"}, timings
    assert all(v >= 0 for v in timings.values())
    assert timings["total"] >= sum(v for k, v in timings.items() if k != "total") - 0.01
    (info,) = paas.containers(app)
    env = container_env(info)
    assert (env["PORT"], env["DYNO"], env["GIT_REV"]) == ("5000", "web.1", head(tree))
    assert paas.ls_remote(app) == {"refs/heads/main": head(tree)}
    # The same answer with curl, the way a user checks it.
    curl = run(["curl", "-sS", "-H", f"Host: {app}.shipmate.test",
                f"http://127.0.0.1:{paas.http_port}/"], timeout=30)
    assert "Hello from Shipmate" in curl.stdout, curl.stderr


def test_failed_build_rejects_the_push_and_the_old_release_keeps_serving(
        paas: PaasDaemon, tmp_path: Path) -> None:
    tree, app = work_tree(tmp_path / "tree"), unique("badbuild")
    _deploy(paas, tree, app)
    good = head(tree)
    paas.wait_page(app, good[:7])
    commit(tree, "broken build", {"Dockerfile": "FROM shipmate/node:18\nRUN false\n"})
    res = paas.push(tree, app)
    assert res.returncode != 0
    assert "pre-receive hook declined" in res.stderr
    assert " !     " in res.stderr and "Dockerfile app detected" in res.stderr
    assert paas.ls_remote(app) == {"refs/heads/main": good}
    status, body = paas.get(app)
    assert status == 200 and good[:7] in body
    releases = json.loads(paas.ok("releases", app, "--format", "json"))
    assert [r["version"] for r in releases] == [1]
    # A fixed push deploys as v2.
    fixed = commit(tree, "fixed", {"Dockerfile": None})
    _deploy(paas, tree, app)
    paas.wait_page(app, fixed[:7])
    assert paas.ls_remote(app) == {"refs/heads/main": fixed}


def test_failing_health_check_is_never_switched_to_and_a_fixed_push_deploys(
        paas: PaasDaemon, tmp_path: Path) -> None:
    tree, app = work_tree(tmp_path / "tree"), unique("badcheck")
    app_json = json.loads((tree / "app.json").read_text())
    app_json["healthchecks"]["web"][0]["attempts"] = 2  # fail fast
    commit(tree, "fewer attempts", {"app.json": json.dumps(app_json)})
    _deploy(paas, tree, app)
    good = head(tree)
    paas.wait_page(app, good[:7])
    server = (tree / "server.js").read_text()
    broken = server.replace('res.writeHead(200, { "Content-Type": "text/plain" });',
                            'res.writeHead(500, { "Content-Type": "text/plain" });')
    assert broken != server
    commit(tree, "health answers 500", {"server.js": broken})
    res = paas.push(tree, app)
    assert res.returncode != 0
    assert "health check /health failed after 2 attempts: HTTP 500" in res.stderr
    assert "the running release keeps serving" in res.stderr
    status, body = paas.get(app)
    assert status == 200 and good[:7] in body
    assert paas.ls_remote(app) == {"refs/heads/main": good}
    assert paas.upstream(app) and len(paas.upstream(app)) == 1
    # The failed release's instance is gone; only the old one runs.
    deadline = time.monotonic() + 30
    while _running(app) != 1 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert _running(app) == 1
    # Content that is not found fails the check too.
    app_json["healthchecks"]["web"][0]["content"] = "no such text"
    commit(tree, "content not found", {"server.js": server, "app.json": json.dumps(app_json)})
    res = paas.push(tree, app)
    assert res.returncode != 0
    assert "expected content 'no such text' not found" in res.stderr
    # The fix deploys.
    app_json["healthchecks"]["web"][0]["content"] = "ok"
    fixed = commit(tree, "fixed", {"app.json": json.dumps(app_json)})
    _deploy(paas, tree, app)
    paas.wait_page(app, fixed[:7])
    releases = json.loads(paas.ok("releases", app, "--format", "json"))
    assert [(r["version"], r["git_rev"], r["current"]) for r in releases] == [
        (1, good, False), (2, fixed, True)]


def test_checks_disable_lets_a_release_without_a_healthy_check_deploy(
        paas: PaasDaemon, tmp_path: Path) -> None:
    tree, app = work_tree(tmp_path / "tree"), unique("nocheck")
    app_json = json.loads((tree / "app.json").read_text())
    app_json["healthchecks"]["web"][0].update(path="/nowhere", content="never", attempts=1)
    commit(tree, "a check that cannot pass", {"app.json": json.dumps(app_json)})
    paas.apps.add(app)
    paas.ok("apps:create", app)
    paas.ok("checks:disable", app)
    assert "_all_" in paas.ok("checks:report", app)
    out = _deploy(paas, tree, app)
    assert "Zero downtime checks disabled, skipping" in out
    paas.wait_page(app, head(tree)[:7])
    paas.ok("checks:enable", app)
    assert "Checks disabled list: none" in paas.ok("checks:report", app)
    res = paas.cli("ps:restart", app)
    assert res.returncode != 0 and "health check /nowhere failed" in res.stdout + res.stderr


def test_locked_app_refuses_pushes_until_unlocked(paas: PaasDaemon, tmp_path: Path) -> None:
    tree, app = work_tree(tmp_path / "tree"), unique("locked")
    paas.apps.add(app)
    assert "Creating" in paas.ok("apps:create", app)
    assert "Deploy lock created" in paas.ok("apps:lock", app)
    assert paas.ok("apps:report", app, "--app-locked").strip() == "true"
    res = paas.push(tree, app)
    assert res.returncode != 0
    assert f" !     Deploy lock exists for {app}" in res.stderr
    assert "refs/heads/main" not in paas.ls_remote(app)
    assert _running(app) == 0
    paas.ok("apps:unlock", app)
    assert paas.ok("apps:report", app, "--app-locked").strip() == "false"
    _deploy(paas, tree, app)
    paas.wait_page(app, head(tree)[:7])


def test_destroy_removes_containers_units_and_repository(paas: PaasDaemon,
                                                         tmp_path: Path) -> None:
    tree, app = work_tree(tmp_path / "tree"), unique("doomed")
    _deploy(paas, tree, app)
    paas.wait_page(app, head(tree)[:7])
    repo = paas.state_dir / "repos" / f"{app}.git"
    assert repo.is_dir() and _running(app) == 1
    refused = paas.cli("apps:destroy", app)  # no tty, no --force
    assert refused.returncode == 1 and "--force" in refused.stderr
    out = paas.ok("apps:destroy", app, "--force")
    assert "Removed 1 instance(s)" in out
    assert not repo.exists()
    assert app not in paas.ok("apps:list")
    units = paas.ok("fleet", "list-unit-files", "--no-legend")
    assert f"{app}_" not in units
    deadline = time.monotonic() + 30
    while app_container_ids(app) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert app_container_ids(app) == []
    status, _ = paas.get(app)
    assert status == 404  # no such vhost any more
    exists = paas.cli("apps:exists", app)
    assert exists.returncode == 1 and f" !     App {app} does not exist" in exists.stderr


def test_failing_release_phase_rejects_the_push(paas: PaasDaemon, tmp_path: Path) -> None:
    tree, app = work_tree(tmp_path / "tree"), unique("phase")
    procfile = "web: node server.js\nrelease: echo migrating $GIT_REV && exit 3\n"
    commit(tree, "failing release phase", {"Procfile": procfile})
    res = paas.push(tree, app)
    assert res.returncode != 0
    assert f"migrating {head(tree)}" in res.stderr
    assert "release command failed with exit code 3" in res.stderr
    assert paas.ls_remote(app) == {}
    assert _running(app) == 0
    assert json.loads(paas.ok("releases", app, "--format", "json")) == []
    commit(tree, "working release phase", {"Procfile": "web: node server.js\n"
                                           "release: echo migrated\n"})
    out = _deploy(paas, tree, app)
    assert "-----> Running release command: echo migrated" in out and "migrated" in out
    paas.wait_page(app, head(tree)[:7])
