"""Hardening of the PaaS against one ordinary key, on a real daemon: a domain belongs to one
app, builds reach only the package cache, and a deploy cannot outlive its client or hold its
app's lock against ps:stop / apps:destroy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.paas_helpers import (
    DOMAIN,
    PaasDaemon,
    commit,
    head,
    paas,
    unique,
    work_tree,
)

pytestmark = pytest.mark.integration
__all__ = ["paas"]  # the fixture, imported for pytest


def _refused(paas: PaasDaemon, *args: str) -> str:
    res = paas.cli(*args)
    assert res.returncode == 1, res.stdout + res.stderr
    return res.stderr


def test_domain_takeover_is_refused(paas: PaasDaemon) -> None:
    one, two = unique("dom1"), unique("dom2")
    for app in (one, two):
        paas.apps.add(app)
        paas.ok("apps:create", app)
    assert f"already belongs to app {two}" in _refused(paas, "domains:add", one,
                                                        f"{two}.{DOMAIN}")
    assert "names this machine" in _refused(paas, "domains:add", one, "localhost")
    assert "IP address" in _refused(paas, "domains:add", one, "127.0.0.1")
    assert "reserved for the Shipmate dashboard" in _refused(paas, "domains:add", one,
                                                            f"shipmate.{DOMAIN}")
    assert "wildcard" in _refused(paas, "domains:add", one, f"*.{DOMAIN}")
    # whichever comes second loses: an app named after another's custom domain
    later = unique("later")
    paas.ok("domains:add", one, f"{later}.{DOMAIN}")
    assert f"is a domain of app {one}" in _refused(paas, "apps:create", later)
    assert paas.ok("domains:report", one, "--domains-app-vhosts").split() == [
        f"{later}.{DOMAIN}"]
    assert paas.ok("domains:report", one, "--domains-routing").strip() == "routed"


PROBE = """\
import os, socket, sys, urllib.parse
gw = urllib.parse.urlsplit(os.environ["SHIPMATE_CACHE_URL"]).hostname
for host, port in [("127.0.0.1", {ssh}), (gw, {ssh}), (gw, {http}), ("172.17.0.1", {ssh}),
                   ("172.17.0.1", {http})]:
    s = socket.socket()
    s.settimeout(5)
    print("probe", host, port, "REACHED" if s.connect_ex((host, port)) == 0 else "refused")
"""

DOCKERFILE = """\
FROM shipmate/python:3.11
ARG SHIPMATE_CACHE_URL
ARG APT_PROXY
ARG PIP_INDEX_URL
ARG PIP_TRUSTED_HOST
COPY probe.py /probe.py
RUN python3 -u /probe.py
RUN apt-get -o Acquire::http::Proxy="$APT_PROXY" update >/dev/null && echo apt-ok
RUN python3 -m venv /v && /v/bin/pip install --no-cache-dir six==1.16.0 && echo pip-ok
CMD ["python3", "-m", "http.server", "5000"]
"""


def test_a_build_reaches_only_the_package_cache(paas: PaasDaemon, tmp_path: Path) -> None:
    app = unique("fenced")
    tree = work_tree(tmp_path / "src")
    commit(tree, "probe", {
        "Dockerfile": DOCKERFILE, "Procfile": None, "app.json": None,
        "probe.py": PROBE.format(ssh=paas.ssh_port, http=paas.http_port)})
    res = paas.push(tree, app)
    out = res.stdout + res.stderr
    probes = [ln.split("probe ", 1)[1].strip() for ln in out.splitlines() if "probe " in ln]
    assert len(probes) == 5, out[-3000:]
    assert all(p.endswith("refused") for p in probes), probes
    assert "apt-ok" in out and "pip-ok" in out, out[-3000:]
    assert res.returncode == 0, out[-3000:]
    net = json.loads(subprocess.run(["docker", "network", "inspect", "shipmate-build"],
                                    capture_output=True, check=True).stdout)[0]
    assert net["Internal"] is True


def _deployed(paas: PaasDaemon, tmp_path: Path, prefix: str) -> tuple[str, str]:
    app = unique(prefix)
    tree = work_tree(tmp_path / app)
    res = paas.push(tree, app)
    assert res.returncode == 0, res.stderr[-3000:]
    paas.wait_page(app, head(tree)[:7])
    return app, head(tree)[:7]


def _start_long_deploy(argv: list[str], env: dict[str, str] | None) -> subprocess.Popen[str]:
    """A client running a deploy whose check wait is long; returned once the deploy waits."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        seen.append(line)
        if "to make sure the processes stay up" in line:
            return proc
        assert time.monotonic() < deadline, "".join(seen)
    raise AssertionError("the deploy ended early:\n" + "".join(seen))


def _log(paas: PaasDaemon, app: str) -> str:
    """The daemon's log lines about ``app`` and cancellations (for a failure's message)."""
    text = (paas.state_dir / "daemon.log").read_text(errors="replace")
    start = text.find(f"the client of a deploy of {app}")
    return text[start:start + 6000] if start >= 0 else text[-4000:]


def _kill(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def test_checks_are_bounded(paas: PaasDaemon) -> None:
    app = unique("bounds")
    paas.apps.add(app)
    paas.ok("apps:create", app)
    assert "wait 1e+08 is out of range" in _refused(paas, "checks:set", app, "wait", "100000000")
    assert "attempts 1000 is out of range" in _refused(paas, "checks:set", app, "attempts",
                                                        "1000")
    assert "timeout 0.5 is out of range" in _refused(paas, "checks:set", app, "timeout", "0.5")


def test_a_deploy_whose_client_left_is_cancelled(paas: PaasDaemon, tmp_path: Path) -> None:
    app, rev = _deployed(paas, tmp_path, "left")
    paas.ok("checks:set", app, "wait", "600")
    before = {c["Id"] for c in paas.wait_containers(app, 1)}
    client = _start_long_deploy(
        [sys.executable, "-m", "shipmate.cli.main", "config:set", app, "X=1"], paas.env)
    assert len(paas.containers(app)) == 2
    _kill(client)
    # The new instance goes, the lock is released, the old release keeps serving.
    deadline = time.monotonic() + 30
    while {c["Id"] for c in paas.containers(app)} != before:
        assert time.monotonic() < deadline, _log(paas, app)
        time.sleep(0.3)
    assert paas.wait_page(app, rev)
    paas.ok("checks:set", app, "wait", "1")
    paas.ok("ps:restart", app, timeout=120)  # the lock is free


def test_apps_destroy_cancels_a_running_deploy_over_ssh(paas: PaasDaemon,
                                                        tmp_path: Path) -> None:
    app, _ = _deployed(paas, tmp_path, "doomed")
    paas.ok("checks:set", app, "wait", "600")
    ssh = [*paas.ssh_command().split(), "-p", str(paas.ssh_port), "shipmate@127.0.0.1",
           "ps:restart", app]
    client = _start_long_deploy(ssh, None)
    try:
        started = time.monotonic()
        out = paas.ok("apps:destroy", app, "--force", timeout=60)
        assert time.monotonic() - started < 30
        assert "Cancelled the running deploy" in out
        paas.wait_containers(app, 0)  # the agent stops them as their units go
    finally:
        _kill(client)
    assert f"{app}" not in paas.ok("apps:list")


def test_ps_stop_cancels_a_deploy_and_stops_the_app(paas: PaasDaemon, tmp_path: Path) -> None:
    app, rev = _deployed(paas, tmp_path, "stopped")
    paas.ok("checks:set", app, "wait", "600")
    client = _start_long_deploy(
        [sys.executable, "-m", "shipmate.cli.main", "ps:restart", app], paas.env)
    try:
        out = paas.ok("ps:stop", app, timeout=60)
        assert "Cancelled the running deploy" in out
        paas.wait_containers(app, 0)
        assert paas.get(app)[0] == 502
    finally:
        _kill(client)
    paas.ok("ps:start", app)
    assert paas.wait_page(app, rev)
