"""A single machine grows into a cluster without redeploying: node-1 runs alone on SQLite
(`shipmate up`) with two routed apps, then `cluster init` carries its store into etcd and
node-2 joins, while both apps keep answering through node-1's router throughout."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipmate.cluster import spec as sp
from tests.integration.cluster_helpers import ClusterCli, http_get, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAME = "smcarry"
SUBNET = "172.30.12.0/24"
STATE = Path("/tmp/shipmate-cluster-tests")  # shared with the other cluster tests: wheelhouse
APPS = ("alpha", "beta")


@pytest.fixture(scope="module")
def cli() -> Iterator[ClusterCli]:
    if subprocess.run(["docker", "image", "inspect", "shipmate/base:bookworm"],
                      capture_output=True).returncode != 0:
        pytest.skip("shipmate/base:bookworm is missing: run shipmate images:bootstrap")
    c = ClusterCli(NAME, SUBNET, STATE)
    c.cluster("down", check=False, timeout=300)
    # two machines, neither in a cluster yet
    c.cluster("up", "--subnet", SUBNET, "--nodes", "2", "--no-join", timeout=1500)
    try:
        yield c
    finally:
        if not os.environ.get("SHIPMATE_TEST_KEEP_CLUSTER"):
            c.cluster("down", check=False, timeout=300)


def _unit(app: str) -> str:
    page = f"mkdir -p /srv && echo {app} > /srv/index.html && cd /srv && " \
           "exec python3 -m http.server 5000"
    return f"""[Container]
Image=shipmate/python:3.11
Exec=sh -c "{page}"
PublishPort=5000

[X-Shipmate]
Route={app}
RoutePort=5000
Release=r1
"""


def _api(cli: ClusterCli, method: str, path: str, body: str = "") -> None:
    cli.inner("node-1", "curl", "-sf", "--unix-socket", sp.NODE_SOCKET, "-X", method,
              "--data-binary", body, f"http://daemon{path}")


class Poller(threading.Thread):
    """Asks node-1's router for both apps, again and again, counting the answers."""

    def __init__(self, address: str) -> None:
        super().__init__(daemon=True)
        self.address, self.seen, self.done = address, Counter[str](), threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for app in APPS:
                status, body = http_get(self.address, f"{app}.test", timeout=2)
                self.seen["ok" if status == 200 and body == app else f"{app}: {status}"] += 1
            time.sleep(0.05)


def test_a_single_machine_becomes_a_cluster_without_redeploying(
        cli: ClusterCli, tmp_path: Path) -> None:
    cli.inner("node-1", "shipmate", "up")  # alone, on SQLite
    wait_for("the single-machine daemon", lambda: cli.run("status", node="node-1",
                                                          check=False).returncode == 0, 60)
    for app in APPS:
        cli.run("apps:create", app, node="node-1")
        cli.run("config:set", app, f"WHO={app}", node="node-1", timeout=120)
        path = tmp_path / f"{app}.container"
        path.write_text(_unit(app))
        cli.run("fleet", "start", str(path), node="node-1", timeout=120)
        _api(cli, "PUT", f"/v1/kv/shipmate/routes/domains/{app}",
             json.dumps({"domains": [f"{app}.test"]}))
        _api(cli, "PUT", f"/v1/kv/shipmate/routes/active/{app}", '{"release": "*"}')
    address = cli.address("node-1")
    for app in APPS:
        wait_for(f"{app} answering", lambda app=app: http_get(address, f"{app}.test")[1] == app,
                 90)
    poller = Poller(address)
    poller.start()
    try:
        init = cli.inner("node-1", *sp.init_args(cli.shape, cli.shape.node("node-1")))
        assert json.loads(init[init.find("{"):])["name"] == "node-1"
        token = json.loads(cli.inner("node-1", "shipmate", "--format", "json", "cluster",
                                     "join-token"))["token"]
        cli.inner("node-2", *sp.join_args(cli.shape.node("node-1"), cli.shape.node("node-2"),
                                          token))
        wait_for("two machines", lambda: cli.machines("node-2") == ["node-1", "node-2"], 60)
        time.sleep(3)
    finally:
        poller.done.set()
        poller.join()
    assert set(poller.seen) == {"ok"}, poller.seen  # every request answered, by its app
    assert poller.seen["ok"] > 20
    # the state is in etcd now: node-2 (which never saw SQLite) reads it
    out = cli.run("apps:list", node="node-2").stdout
    assert all(app in out for app in APPS), out
    shown = cli.run("config:show", "alpha", node="node-2").stdout
    assert any(line.split()[:1] == ["WHO:"] and line.split()[-1] == "alpha"
               for line in shown.splitlines()), shown
    units = cli.units("node-2")
    assert units["alpha.container"] == ("node-1", "running"), units
    keys = cli.inner("node-1", "etcdctl", "get", "--prefix", "/shipmate/apps/", "--keys-only")
    assert "/shipmate/apps/alpha" in keys and "/shipmate/apps/beta" in keys
