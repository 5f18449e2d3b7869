"""Issue 21's audit trail and metrics against a real daemon, real git and the real ssh client:
``shipmate events -f`` prints a push, a ``config:set`` and a ``fleet start`` as they happen,
each with the SSH key that made it, and never a config value; ``/metrics`` parses with a
Prometheus text parser and carries the deploy histogram after the push (on the unix socket,
and on api_port only with the bearer token)."""

from __future__ import annotations

import asyncio
import json
import queue
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shipmate.httpapi.client import DaemonClient
from tests.conftest import free_port
from tests.integration.paas_helpers import (
    PaasDaemon,
    make_key,
    run,
    running_daemon,
    unique,
    work_tree,
)
from tests.unit.core.test_metrics import strict_parse

pytestmark = pytest.mark.integration
UNIT = "[Unit]\nDescription=audit probe\n\n[Service]\nExecStart=/bin/sleep 1000\n"
TOKEN = secrets.token_hex(24)


@pytest.fixture(scope="module")
def daemon() -> Iterator[PaasDaemon]:
    """A daemon with the cache (its metrics join /metrics), api_port and a metrics token."""
    with tempfile.NamedTemporaryFile("w", prefix="shipmate-token-", delete=False) as f:
        f.write(TOKEN + "\n")
    env = {"SHIPMATE_API_PORT": str(free_port()), "SHIPMATE_METRICS_TOKEN_FILE": f.name}
    try:
        with running_daemon("shipmate-events-", env=env) as d:
            yield d
    finally:
        Path(f.name).unlink(missing_ok=True)


class Follower:
    """A running ``events -f``: its output lines, read as they come."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.seen: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def wait_for(self, match: Callable[[str], bool], timeout: float, what: str) -> str:
        """The first new line that ``match`` accepts."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                line = ""
            if line is None:
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise AssertionError(f"events -f ended before {what}: {err}\n{self.seen}")
            if line:
                self.seen.append(line)
                if match(line):
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout}s; saw:\n" +
                                     "\n".join(self.seen[-30:]))

    def event(self, timeout: float, what: str, **want: str) -> dict[str, object]:
        """The next JSON event with the fields ``want``."""
        def match(line: str) -> bool:
            data = json.loads(line)
            return all(data.get(k) == v for k, v in want.items())
        return dict(json.loads(self.wait_for(match, timeout, what)))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def _ssh_argv(d: PaasDaemon, key: Path | None, *args: str) -> list[str]:
    return [*d.ssh_command(key).split(), "-p", str(d.ssh_port), "shipmate@127.0.0.1", *args]


def _ssh(d: PaasDaemon, key: Path, *args: str, input: str = "") -> str:
    res = run(_ssh_argv(d, key, *args), input=input, timeout=300)
    assert res.returncode == 0, f"ssh {' '.join(args)}: {res.stdout}{res.stderr}"
    return res.stdout


def _stored_events(d: PaasDaemon) -> str:
    """Every value under /shipmate/events/ as the store holds it."""
    client = DaemonClient(d.state_dir / "shipmate.sock")
    answer = asyncio.run(client.request("GET", "/v1/kv/shipmate/events/",
                                        params={"prefix": "1"}))
    return "\n".join(kv["value"] for kv in answer["kvs"])


def _get_metrics(d: PaasDaemon) -> str:
    res = run(["curl", "-sS", "--fail", "--unix-socket", str(d.state_dir / "shipmate.sock"),
               "http://shipmate/metrics"], timeout=30)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_events_follow_a_push_a_config_set_and_a_fleet_start(
        daemon: PaasDaemon, tmp_path: Path) -> None:
    ops = make_key(tmp_path, "ops")
    daemon.ok("ssh-keys:add", "ops", f"{ops}.pub", "--admin")  # fleet needs an admin
    app, unit = unique("audit"), f"{unique('probe')}.service"
    secret = f"s3cr3t-{secrets.token_hex(8)}"
    local = Follower([sys.executable, "-m", "shipmate.cli.main", "events", "-f",
                      "--format", "json"], env=daemon.env)
    over_ssh = Follower(_ssh_argv(daemon, None, "events", "-f"))
    try:
        # Both list the recent events first (the keys added), then follow.
        local.event(30, "the ssh-keys:add of ops", verb="ssh-keys:add", summary="ops (admin)",
                    actor="root", via="local")
        over_ssh.wait_for(lambda ln: "ssh-keys:add" in ln and " ops" in ln, 30, "ssh-keys:add")

        push = daemon.push(work_tree(tmp_path / "tree"), app)
        assert push.returncode == 0, push.stderr
        created = local.event(30, "apps:create", verb="apps:create", app=app)
        assert (created["actor"], created["via"]) == ("tester", "ssh")
        pushed = local.event(30, "the push", verb="push", app=app)
        assert (pushed["actor"], pushed["via"], pushed["outcome"]) == ("tester", "ssh", "ok")
        assert float(str(pushed["duration"])) > 0

        _ssh(daemon, ops, "config:set", app, f"SECRET_TOKEN={secret}", "PLAIN=x")
        changed = local.event(300, "config:set", verb="config:set", app=app)
        assert (changed["actor"], changed["summary"], changed["outcome"]) == \
            ("ops", "set PLAIN SECRET_TOKEN", "ok")

        _ssh(daemon, ops, "fleet", "submit", unit, input=UNIT)
        _ssh(daemon, ops, "fleet", "start", unit)
        local.event(30, "fleet submit", verb="fleet submit", summary=unit, actor="ops")
        started = local.event(60, "fleet start", verb="fleet start", summary=unit)
        assert started["actor"] == "ops"
        daemon.ok("fleet", "stop", unit)
        assert local.event(60, "fleet stop", verb="fleet stop", summary=unit)["actor"] == "root"

        # The same, as text over SSH: time, actor, verb, app, summary.
        for actor, verb, rest in (("tester", "push", app), ("ops", "config:set", app),
                                  ("ops", "fleet start", unit)):
            line = over_ssh.wait_for(lambda ln, a=actor, v=verb, r=rest: ln.split()[1:2] == [a]
                                     and f" {v} " in ln and r in ln, 30, f"{verb} by {actor}")
            assert line[:4].isdigit() and line.split()[0].endswith("Z")
    finally:
        local.stop()
        over_ssh.stop()
        daemon.ok("fleet", "destroy", unit)
    listing = daemon.ok("events", "-n", "1000") + daemon.ok("events", "--app", app, "--format",
                                                            "json")
    stored = _stored_events(daemon)
    for text in (listing, "\n".join(local.seen), "\n".join(over_ssh.seen), stored):
        assert "SECRET_TOKEN" in text  # the key is told, its value never
        assert secret not in text


def test_events_of_one_app_and_refusals(daemon: PaasDaemon) -> None:
    app = unique("evapp")
    daemon.apps.add(app)
    daemon.ok("apps:create", app)
    bad = daemon.cli("apps:destroy", "no-such-app-x", "--force")
    assert bad.returncode == 1
    mine = [json.loads(line) for line in daemon.ok(
        "events", "--app", app, "--format", "json").splitlines()]
    assert [(e["verb"], e["actor"], e["outcome"]) for e in mine] == [("apps:create", "root", "ok")]
    failed = json.loads(daemon.ok("events", "-n", "1", "--format", "json"))
    assert (failed["verb"], failed["app"], failed["outcome"]) == \
        ("apps:destroy", "no-such-app-x", "failed")
    assert "does not exist" in failed["error"]
    res = daemon.cli("events", "--app", "../etc")
    assert res.returncode == 1 and res.stderr.startswith(" !     ")


def test_metrics_parse_and_carry_the_deploy_histogram(daemon: PaasDaemon,
                                                      tmp_path: Path) -> None:
    app = unique("metrics")
    push = daemon.push(work_tree(tmp_path / "tree"), app)
    assert push.returncode == 0, push.stderr
    text = _get_metrics(daemon)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    parsed = strict_parse(text)
    deploy = families["shipmate_deploy_duration_seconds"]
    assert deploy.type == "histogram"
    inf = [s for s in deploy.samples if s.name.endswith("_bucket") and s.labels ==
           {"app": app, "outcome": "ok", "le": "+Inf"}]
    assert len(inf) == 1 and inf[0].value == 1
    for name in ("shipmate_build_duration_seconds", "shipmate_health_check_duration_seconds"):
        counts = [v for s, labels, v in parsed[name] if s == f"{name}_count"
                  and f'app="{app}"' in labels]
        assert counts == [1.0], (name, parsed[name])
    reloads = [v for s, labels, v in parsed["shipmate_router_reloads_total"]
               if 'outcome="ok"' in labels]
    assert reloads and reloads[0] >= 1
    assert "shipmate_cache_requests" in families  # the cache's own metrics join in
    assert parsed["shipmate_scheduler_placements_total"]


def test_metrics_on_api_port_need_the_token(daemon: PaasDaemon) -> None:
    url = f"http://127.0.0.1:{daemon.env['SHIPMATE_API_PORT']}/metrics"
    for headers in ({}, {"Authorization": "Bearer wrong-token-of-some-length"}):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10)
        assert refused.value.code == 401
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        text = resp.read().decode()
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "shipmate_deploy_duration_seconds" in {
        f.name for f in text_string_to_metric_families(text)}
