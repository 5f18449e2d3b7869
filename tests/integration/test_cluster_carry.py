"""A single machine grows into a cluster without redeploying: node-1 runs alone on SQLite
(`shipmate up`) with two pushed apps, one linked to a Postgres service, then `cluster init`
carries its store into etcd and node-2 joins, while both apps keep answering through
node-1's router throughout and the linked one keeps counting its rows in Postgres."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipmate.cluster import formation
from shipmate.cluster import spec as sp
from tests.integration.cluster_helpers import ClusterCli, http_get, wait_for
from tests.integration.paas_helpers import ROOT, make_key, work_tree

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAME = "smcarry"
SUBNET = "172.30.12.0/24"
STATE = Path("/tmp/shipmate-cluster-tests")  # shared with the other cluster tests: wheelhouse
DOMAIN = "carry.test"
VISITS = ROOT / "examples" / "python-visits"  # counts its rows in Postgres


@pytest.fixture(scope="module")
def cli() -> Iterator[ClusterCli]:
    if subprocess.run(["docker", "image", "inspect", "shipmate/postgres:15"],
                      capture_output=True).returncode != 0:
        pytest.skip("shipmate/postgres:15 is missing: run shipmate images:bootstrap --services")
    c = ClusterCli(NAME, SUBNET, STATE)
    c.cluster("down", check=False, timeout=300)
    # two machines, neither in a cluster yet; their package caches on, as on real machines
    # (the visits app installs psycopg2 from Debian when it is built)
    c.cluster("up", "--subnet", SUBNET, "--nodes", "2", "--no-join",
              "--env", "SHIPMATE_CACHE=1", timeout=1500)
    try:
        yield c
    finally:
        if not os.environ.get("SHIPMATE_TEST_KEEP_CLUSTER"):
            c.cluster("down", check=False, timeout=300)


class Poller(threading.Thread):
    """Asks node-1's router for both apps, again and again: ``hello`` must say hello, and
    ``visits`` a count above the last one (each request adds a row)."""

    def __init__(self, address: str, visits: int) -> None:
        super().__init__(daemon=True)
        self.address, self.visits = address, visits
        self.seen, self.done = Counter[str](), threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.once()
            time.sleep(0.05)

    def once(self) -> int:
        """One request to each app; how many answered as they should."""
        status, body = http_get(self.address, f"hello.{DOMAIN}", timeout=2)
        hello = (status, body) == (200, "hello")
        visits = self._counted(*http_get(self.address, f"visits.{DOMAIN}", timeout=5))
        self.seen["ok" if hello else f"hello: {status}"] += 1
        self.seen["ok" if visits else "visits"] += 1
        return hello + visits

    def _counted(self, status: int, body: str) -> bool:
        count = int(body.split()[1]) if status == 200 and body.startswith("Visits: ") else 0
        ok, self.visits = count > self.visits, max(count, self.visits)
        return ok


def _deploy(cli: ClusterCli, tmp_path: Path) -> None:
    """On node-1 alone: a key, the global domain, a Postgres, two apps, one linked."""
    key = make_key(tmp_path)
    cli.run("ssh-keys:add", "tester", str(key.with_suffix(".pub")), node="node-1")
    cli.run("domains:set-global", DOMAIN, node="node-1")
    cli.run("postgres:create", "db", node="node-1", timeout=600)
    (tmp_path / "page").mkdir()
    (tmp_path / "page" / "index.html").write_text("hello\n")
    (tmp_path / "page" / "Procfile").write_text("web: python3 -m http.server $PORT\n")
    for app, tree in (("hello", work_tree(tmp_path / "hello", tmp_path / "page")),
                      ("visits", work_tree(tmp_path / "visits", VISITS))):
        pushed = cli.push(key, tree, app, "node-1")
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    cli.run("postgres:link", "db", "visits", node="node-1", timeout=300)


def test_a_single_machine_with_apps_and_postgres_becomes_a_cluster(
        cli: ClusterCli, tmp_path: Path) -> None:
    cli.inner("node-1", "shipmate", "up")  # alone, on SQLite
    wait_for("the single-machine daemon", lambda: cli.run("status", node="node-1",
                                                          check=False).returncode == 0, 60)
    _deploy(cli, tmp_path)
    address = cli.address("node-1")
    wait_for("the linked app counting", lambda: http_get(
        address, f"visits.{DOMAIN}")[1].startswith("Visits: "), 60)
    poller = Poller(address, 0)
    poller.start()
    try:
        cli.inner("node-1", *sp.init_args(cli.shape, cli.shape.node("node-1")))
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
    assert poller.seen["ok"] > 40 and poller.visits > 20, (poller.seen, poller.visits)
    for node in ("node-1", "node-2"):  # afterwards every router serves both apps, and the
        # linked one counts on from the rows it wrote before the cluster existed
        check = Poller(cli.address(node), poller.visits)
        wait_for(f"both apps through {node}", lambda check=check: check.once() == 2, 30)
    # the state is in etcd now: node-2 (which never saw SQLite) reads it ...
    assert {"hello", "visits"} <= set(cli.run("apps:list", node="node-2").stdout.split())
    assert cli.run("postgres:info", "db", "--links", node="node-2").stdout.split() == ["visits"]
    assert cli.units("node-2")["postgres-db.container"] == ("node-1", "running")
    # ... and so does etcdctl with the client certificate the host gets
    pki = asyncio.run(formation.host_certificate(cli.shape, STATE))
    keys = subprocess.run(
        ["etcdctl", "--endpoints", cli.shape.node("node-1").etcd_client_url,
         "--cacert", str(pki / "ca.crt"), "--cert", str(pki / "client.crt"),
         "--key", str(pki / "client.key"), "get", "--prefix", "/shipmate/", "--keys-only"],
        capture_output=True, text=True, timeout=30, check=True).stdout.split()
    for wanted in ("/shipmate/apps/hello/meta", "/shipmate/apps/visits/releases/000002",
                   "/shipmate/fleet/units/postgres-db.container", "/shipmate/ssh-keys/tester",
                   "/shipmate/services/postgres/db/meta"):
        assert wanted in keys, (wanted, keys)
    # one instance of the linked app: the stopping single-machine daemon retired release 1's
    visits = [k for k in keys if k.startswith("/shipmate/fleet/units/visits_")]
    assert len(visits) == 1 and "_v2-" in visits[0], visits
