"""The Dokku-style commands against a real daemon and real deploys: ps:scale, releases and
rollback, config values kept exactly, run, logs, urls, domains, output formats and errors."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.paas_helpers import (
    DOMAIN,
    PaasDaemon,
    commit,
    container_env,
    head,
    paas,
    unique,
    work_tree,
)
from tests.integration.paas_helpers import run as sh

pytestmark = pytest.mark.integration
__all__ = ["paas"]  # the fixture, imported for pytest

# A value a shell, an env file or a unit file could each mangle.
TRICKY = {
    "SPACES": "two  spaces and a trailing one ",
    "QUOTES": "it's \"quoted\" `ticked`",
    "EQUALS": "a=b==c=",
    "NEWLINES": "line one\nline two\n\nline four",
    "SHELLISH": "$HOME ${PATH} $(id) \\n 100% %i %n; rm -rf /",
}


def _deploy(paas: PaasDaemon, tree: Path, app: str) -> None:
    res = paas.push(tree, app)
    assert res.returncode == 0, res.stderr[-3000:]
    paas.wait_page(app, head(tree)[:7])


def _wait_dynos(paas: PaasDaemon, app: str, want: set[str], timeout: float = 30) -> None:
    """Wait until the DYNOs answering a burst of requests are exactly ``want``."""
    deadline = time.monotonic() + timeout
    while True:
        seen = set()
        for _ in range(30):
            status, body = paas.get(app)
            assert status == 200, body
            seen.add(body.split("Served by ")[1].split(" ")[0])
        if seen == want:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{app} answered from {seen}, wanted {want}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def logged(paas: PaasDaemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An app whose server logs every request, deployed once for the read-only tests."""
    tree = work_tree(tmp_path_factory.mktemp("logged") / "tree")
    server = (tree / "server.js").read_text().replace(
        "const server = http.createServer((req, res) => {",
        "const server = http.createServer((req, res) => {\n  console.log(`request ${req.url}`);")
    commit(tree, "log requests", {"server.js": server})
    app = unique("logged")
    _deploy(paas, tree, app)
    yield app


def test_scale_to_three_and_back_to_one(paas: PaasDaemon, tmp_path: Path) -> None:
    tree, app = work_tree(tmp_path / "tree"), unique("scaled")
    _deploy(paas, tree, app)
    assert len(paas.wait_upstream(app, 1)) == 1
    out = paas.ok("ps:scale", app, "web=3")
    assert "-----> Starting web.3" in out and "=====> Application deployed" in out
    servers = paas.wait_upstream(app, 3)
    assert len(set(servers)) == 3
    _wait_dynos(paas, app, {"web.1", "web.2", "web.3"})
    report = json.loads(paas.ok("ps:report", app, "--format", "json"))
    assert {p["instance"] for p in report["processes"]
            if p["state"] == "active/running"} == {"web.1", "web.2", "web.3"}
    assert "web" in paas.ok("ps:scale", app) and "3" in paas.ok("ps:scale", app)
    paas.ok("ps:scale", app, "web=1")
    assert len(paas.wait_upstream(app, 1)) == 1
    _wait_dynos(paas, app, {"web.1"})
    paas.wait_containers(app, 1)
    bad = paas.cli("ps:scale", app, "worker=1")
    assert bad.returncode == 1 and bad.stderr.startswith(" !     ")
    assert "not in the Procfile" in bad.stderr


def test_rollback_restores_the_page_and_the_config(paas: PaasDaemon, tmp_path: Path) -> None:
    tree, app = work_tree(tmp_path / "tree"), unique("rollback")
    _deploy(paas, tree, app)  # v1: no config
    v1 = head(tree)
    paas.ok("config:set", app, "GREETING=Ahoy from v2")  # v2
    paas.wait_page(app, "<h1>Ahoy from v2</h1>")
    server = (tree / "server.js").read_text().replace("Served by", "Dished up by")
    v3 = commit(tree, "new wording", {"server.js": server})
    _deploy(paas, tree, app)  # v3: new code, v2's config
    paas.wait_page(app, "Dished up by")
    releases = json.loads(paas.ok("releases", app, "--format", "json"))
    assert [(r["version"], r["git_rev"]) for r in releases] == [(1, v1), (2, v1), (3, v3)]

    out = paas.ok("releases:rollback", app, "v1")  # v4 = v1's image and config
    assert "=====> Application deployed: v4" in out
    body = paas.wait_page(app, "<h1>Hello from Shipmate</h1>")
    assert "Served by" in body and v1[:7] in body
    assert paas.cli("config:get", app, "GREETING").returncode == 1
    assert json.loads(paas.ok("config:show", app, "--format", "json")) == {}
    (info,) = paas.wait_containers(app, 1)
    assert "GREETING" not in container_env(info) and container_env(info)["GIT_REV"] == v1

    paas.ok("releases:rollback", app, "2")  # v5 = v2: old code, the greeting back
    body = paas.wait_page(app, "<h1>Ahoy from v2</h1>")
    assert "Served by" in body
    assert paas.ok("config:get", app, "GREETING") == "Ahoy from v2\n"
    text = paas.ok("releases", app)
    assert text.startswith(f"=====> {app} Releases") and "v5 (current)" in text
    assert "Rollback to v2" in text
    missing = paas.cli("releases:rollback", app, "v99")
    assert missing.returncode == 1 and " !     Release v99" in missing.stderr


def test_config_values_are_kept_exactly_in_the_store_and_the_container(
        paas: PaasDaemon, tmp_path: Path) -> None:
    tree, app = work_tree(tmp_path / "tree"), unique("config")
    _deploy(paas, tree, app)
    out = paas.ok("config:set", app, *[f"{k}={v}" for k, v in TRICKY.items()])
    assert "-----> Setting config vars" in out
    for key, value in TRICKY.items():
        assert paas.ok("config:get", app, key) == value + "\n", key
    assert json.loads(paas.ok("config:show", app, "--format", "json")) == TRICKY
    assert paas.ok("config:keys", app).split() == sorted(TRICKY)
    (info,) = paas.wait_containers(app, 1)
    env = container_env(info)
    for key, value in TRICKY.items():
        assert env[key] == value, key
    # The process sees them too (not only docker's record of them).
    res = paas.cli("run", app, "node", "-e", "process.stdout.write(JSON.stringify("
                   "Object.fromEntries(Object.entries(process.env).filter(([k]) => "
                   f"{json.dumps(sorted(TRICKY))}.includes(k)))))")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == TRICKY
    # --no-restart records without deploying; unset removes.
    releases = len(json.loads(paas.ok("releases", app, "--format", "json")))
    paas.ok("config:set", "--no-restart", app, "LATER=1")
    paas.ok("config:unset", "--no-restart", app, "SPACES")
    assert len(json.loads(paas.ok("releases", app, "--format", "json"))) == releases
    assert paas.ok("config:get", app, "LATER") == "1\n"
    assert paas.cli("config:get", app, "SPACES").returncode == 1
    # The exports read back by a shell give the same values.
    exports = paas.ok("config:export", app)
    for key in ("EQUALS", "QUOTES", "NEWLINES", "SHELLISH"):
        back = sh(["bash", "-c", f'{exports}\nprintf %s "${key}"'])
        assert back.stdout == TRICKY[key], key
    for bad in ("PORT=1", "1X=2", "NOEQUALS"):
        res = paas.cli("config:set", app, bad)
        assert res.returncode == 1 and res.stderr.startswith(" !     "), bad


def test_run_prints_output_and_passes_the_exit_code_through(paas: PaasDaemon,
                                                             logged: str) -> None:
    res = paas.cli("run", logged, "node", "-e", "console.log(1+1)")
    assert (res.returncode, res.stdout) == (0, "2\n"), res.stderr
    res = paas.cli("run", logged, "node", "-e", "console.log(process.env.DYNO); process.exit(3)")
    assert (res.returncode, res.stdout) == (3, "run.1\n")
    # Output without a final newline from a command that exits at once is not lost (Docker's
    # log follow can end before it arrives).
    for n in range(3):
        res = paas.cli("run", logged, "node", "-e", f"process.stdout.write('quick{n}')")
        assert (res.returncode, res.stdout) == (0, f"quick{n}\n"), res.stderr
    res = paas.cli("run", logged, "sh", "-c", "echo $GIT_REV $PORT")
    rev = json.loads(paas.ok("releases", logged, "--format", "json"))[-1]["git_rev"]
    assert res.stdout.split() == [rev, "5000"]
    # One-off containers are removed afterwards.
    left = sh(["docker", "ps", "-aq", "--filter", f"label=shipmate.one-off={logged}"])
    assert left.stdout.split() == []


def test_logs_tail_the_last_lines_of_the_instances(paas: PaasDaemon, logged: str) -> None:
    for i in range(8):
        assert paas.get(logged, f"/n{i}")[0] == 200
    deadline = time.monotonic() + 20
    while True:
        lines = paas.ok("logs", logged, "-n", "5").splitlines()
        if (lines and lines[-1].endswith("request /n7")) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert lines == [f"{logged}[web.1]: request /n{i}" for i in range(3, 8)]
    assert len(paas.ok("logs", logged, "-n", "2", "-p", "web").splitlines()) == 2
    assert paas.ok("logs", logged, "-p", "worker") == ""


def test_urls_domains_and_reports(paas: PaasDaemon, logged: str) -> None:
    url = f"http://{logged}.shipmate.test:{paas.http_port}"
    assert paas.ok("urls", logged).splitlines() == [url]
    assert paas.ok("url", logged).strip() == url
    domain = f"{logged}.example.org"
    paas.ok("domains:add", logged, domain)
    assert paas.ok("domains:report", logged, "--domains-app-vhosts").strip() == domain
    deadline = time.monotonic() + 20
    while True:
        status, body = paas.get(logged, host=domain)
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200 and "Served by web.1" in body
    paas.ok("domains:remove", logged, domain)
    assert paas.ok("domains:report", logged, "--domains-app-vhosts").strip() == ""
    report = paas.ok("apps:report", logged)
    assert report.startswith(f"=====> {logged} app information\n")
    assert "       App locked:" in report
    assert paas.ok("apps:report", logged, "--app-current-release").strip() == "v1"
    assert paas.ok("apps:report", logged, "--app-deploy-source").strip() == "git"
    apps = json.loads(paas.ok("apps:list", "--format", "json"))
    assert isinstance(apps, list) and logged in [a["name"] for a in apps]
    assert paas.ok("apps:list").startswith("=====> My Apps\n")
    releases = json.loads(paas.ok("releases", logged, "--format", "json"))
    assert isinstance(releases, list) and releases[0]["image"].startswith("sha256:")



def test_clearing_the_global_domain_gives_the_app_a_port(paas: PaasDaemon, logged: str) -> None:
    try:
        out = paas.ok("domains:clear-global")
        line = next(x for x in out.splitlines()
                    if x.startswith(f"-----> {logged} now answers on port "))
        port = int(line.rsplit(" ", 1)[1])
        assert paas.ok("urls", logged).splitlines() == [f"http://127.0.0.1:{port}"]
        deadline = time.monotonic() + 20
        while True:  # the router serves it there, whatever the Host
            status, body = paas.get(logged, host="anything.invalid", port=port)
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert status == 200 and "Served by web.1" in body
    finally:
        paas.ok("domains:set-global", DOMAIN)
    assert paas.ok("urls", logged).splitlines() == [
        f"http://{logged}.{DOMAIN}:{paas.http_port}"]

def test_errors_are_dokku_style_on_stderr_with_exit_1(paas: PaasDaemon) -> None:
    for args in (("config:get", "no-such-app", "X"), ("apps:report", "no-such-app"),
                 ("ps:scale", "no-such-app", "web=2"), ("releases", "no-such-app"),
                 ("apps:create", "Bad_Name"), ("ps:scale", "x", "web=many")):
        res = paas.cli(*args)
        assert res.returncode == 1, args
        assert res.stderr.startswith(" !     "), (args, res.stderr)
        assert " !     " not in res.stdout
