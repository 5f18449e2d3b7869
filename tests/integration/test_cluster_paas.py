"""The PaaS on a real local cluster (`shipmate cluster up`): `git push` to one machine, the
app image travels to the others without a registry, `ps:scale web=3` spreads the instances,
and every machine's router balances over all three. Then one etcd member of three dies: no
unit restarts and a deploy (`config:set`) still works."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster_helpers import ClusterCli, http_get, wait_for
from tests.integration.paas_helpers import EXAMPLE, GIT_ENV, make_key

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAME = "smpaas"  # test_cluster.py uses smtest, bench/failover_cluster.py smbench
SUBNET = "172.30.9.0/24"
STATE = Path("/tmp/shipmate-cluster-tests")  # shared with test_cluster.py: the wheelhouse
NODES = ("node-1", "node-2", "node-3")
DOMAIN = "paas.test"
APP = "codeit"
SERVED_BY = re.compile(r"Served by (web\.\d+) on (\S+), revision")


@pytest.fixture(scope="module")
def cli() -> Iterator[ClusterCli]:
    if subprocess.run(["docker", "image", "inspect", "shipmate/node:18"],
                      capture_output=True).returncode != 0:
        pytest.skip("shipmate/node:18 is missing: run shipmate images:bootstrap")
    c = ClusterCli(NAME, SUBNET, STATE)
    c.cluster("down", check=False)
    started = time.monotonic()
    c.cluster("up", "--subnet", SUBNET, "--format", "json", timeout=1200)
    print(f"cluster up: {time.monotonic() - started:.1f} s")
    try:
        yield c
    finally:
        if not os.environ.get("SHIPMATE_TEST_KEEP_CLUSTER"):
            c.cluster("down", check=False, timeout=300)


@pytest.fixture(scope="module")
def key(cli: ClusterCli, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SSH key the cluster accepts (added through node-2's socket: the store is shared)."""
    path = make_key(tmp_path_factory.mktemp("ssh"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPMATE_")}
    env["SHIPMATE_SOCKET"] = str(STATE / "cluster" / NAME / "node-2" / "shipmate.sock")
    res = subprocess.run([sys.executable, "-m", "shipmate.cli.main", "ssh-keys:add", "tester",
                          "-"], input=path.with_suffix(".pub").read_text(), env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    cli.run("domains:set-global", DOMAIN, node="node-3")
    return path


def _ssh(key: Path) -> str:
    return (f"ssh -i {key} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no "
            "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes")


def _push(cli: ClusterCli, key: Path, tree: Path, node: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **GIT_ENV, "GIT_SSH_COMMAND": _ssh(key)}
    remote = f"ssh://shipmate@{cli.address(node)}:2222/{APP}"
    return subprocess.run(["git", "push", remote, "HEAD:refs/heads/main"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=600)


def _served(cli: ClusterCli, node: str, n: int = 12) -> dict[str, set[str]] | None:
    """DYNO -> hostnames answering through ``node``'s router, None on any failure."""
    seen: dict[str, set[str]] = {}
    for _ in range(n):
        status, body = http_get(cli.address(node), f"{APP}.{DOMAIN}")
        match = SERVED_BY.search(body)
        if status != 200 or not match:
            return None
        seen.setdefault(match.group(1), set()).add(match.group(2))
    return seen


def _app_units(cli: ClusterCli, node: str = "node-1") -> dict[str, tuple[str, str]]:
    return {u: v for u, v in cli.units(node).items() if u.startswith(APP + "_")}


def _three_running(cli: ClusterCli, node: str = "node-1") -> dict[str, tuple[str, str]] | None:
    units = _app_units(cli, node)
    ok = len(units) == 3 and all(sub == "running" for _, sub in units.values())
    return units if ok else None


def _app_containers(cli: ClusterCli) -> dict[str, list[str]]:
    """Node -> IDs of the app's containers running in it."""
    return {n: sorted(cli.inner(n, "docker", "ps", "-q", "--no-trunc", "--filter",
                                f"label=shipmate.app={APP}").split()) for n in NODES}


def _balanced(cli: ClusterCli, node: str) -> dict[str, set[str]] | None:
    seen = _served(cli, node)
    return seen if seen and sorted(seen) == ["web.1", "web.2", "web.3"] else None


def test_push_to_one_machine_scale_spreads_and_every_router_balances(
        cli: ClusterCli, key: Path, tmp_path: Path) -> None:
    tree = tmp_path / "app"
    shutil.copytree(EXAMPLE, tree)
    env = {**os.environ, **GIT_ENV}
    for argv in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                 ["git", "commit", "-q", "-m", "code.it"]):
        subprocess.run(argv, cwd=tree, env=env, check=True, capture_output=True)
    pushed = _push(cli, key, tree, "node-1")
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert "Application deployed" in pushed.stderr + pushed.stdout
    # the image exists only where it was built until a unit elsewhere needs it
    scaled = cli.run("ps:scale", APP, "web=3", node="node-2", timeout=300)
    assert "web" in scaled.stdout
    # the first deploy's instance retires in the background after the switch
    units = wait_for("three running instances", lambda: _three_running(cli), 30)
    assert sorted(m for m, _ in units.values()) == list(NODES), f"not spread: {units}"
    for node in NODES:  # the app image reached every machine, from node-1, by the image route
        images = cli.inner(node, "docker", "images", "--filter", f"label=shipmate.app={APP}",
                           "-q")
        assert images.split(), f"no {APP} image on {node}"
    for node in NODES:
        seen = wait_for(f"{node}'s router to balance over web.1-3",
                        lambda node=node: _balanced(cli, node), 45)
        hosts = {h for hs in seen.values() for h in hs}
        assert len(hosts) == 3, f"{node}: {seen}"


def _etcd_leader(cli: ClusterCli) -> str:
    st = cli.status()
    return next(n["name"] for n in st["nodes"] if n["etcd"]["leader"])


def _quorum_without(cli: ClusterCli, victim: str) -> bool:
    st = cli.status()
    health = {n["name"]: n["etcd"]["health"] for n in st["nodes"]}
    return bool(st["etcd_quorum"]) and health[victim] != "healthy"


def test_losing_an_etcd_member_restarts_nothing_and_deploys_still_work(
        cli: ClusterCli, key: Path) -> None:
    before = _app_containers(cli)
    assert sum(len(v) for v in before.values()) == 3, before
    victim = _etcd_leader(cli)  # the worst member to lose: a new leader must be elected
    # frozen rather than killed: the machine's supervisor would start a killed etcd again
    # at once, and a hung member is the harder case for its clients anyway
    cli.inner(victim, "sh", "-c", "kill -STOP $(pidof etcd)")
    try:
        wait_for("two healthy etcd members of three", lambda: _quorum_without(cli, victim), 30)
        time.sleep(8)  # past two agent TTLs: a lost lease would have stopped units by now
        assert _app_containers(cli) == before, "a unit restarted after losing one member"
        deployer = next(n for n in NODES if n != victim)
        cli.run("config:set", APP, "GREETING=still deploying", node=deployer, timeout=300)
        for node in NODES:
            wait_for(f"{node}'s router to serve the new release", lambda node=node: all(
                "still deploying" in http_get(cli.address(node), f"{APP}.{DOMAIN}")[1]
                for _ in range(6)), 60)
        wait_for("the old release's instances to retire",
                 lambda: _three_running(cli, deployer), 30)
    finally:  # bring the member back (it catches up from the leader)
        cli.inner(victim, "sh", "-c", "kill -CONT $(pidof etcd)", check=False)


def _nginx_master(cli: ClusterCli, node: str) -> str:
    out = cli.inner(node, "sh", "-c", "grep -l 'nginx: master' /proc/[0-9]*/cmdline")
    return out.split()[0].split("/")[2]


def _old_units(cli: ClusterCli, tag_of_new: str) -> list[str]:
    return sorted(u for u in _app_units(cli) if tag_of_new not in u)


def _tags(cli: ClusterCli) -> set[str]:
    return {u.rsplit("_", 1)[1].removesuffix(".container") for u in _app_units(cli)}


def test_old_instances_retire_only_once_every_router_took_the_switch(
        cli: ClusterCli, key: Path) -> None:
    wait_for("three running instances", lambda: _three_running(cli), 60)
    before = _tags(cli)
    # node-3's router falls behind: its nginx master cannot reload (its workers keep serving
    # the old config), so its controller never makes the switch live while it is stopped
    master = _nginx_master(cli, "node-3")
    cli.inner("node-3", "kill", "-STOP", master)
    try:
        deployed = cli.run("config:set", APP, "GREETING=after the switch", node="node-1",
                           timeout=300)
        out = deployed.stdout + deployed.stderr
        assert "The router of node-3 has not taken the switch" in out, out
        new_tags = _tags(cli) - before
        assert len(new_tags) == 1, _app_units(cli)
        (new,) = new_tags
        for node in ("node-1", "node-2"):  # the others switched...
            wait_for(f"{node}'s router to serve the new release", lambda node=node: all(
                "after the switch" in http_get(cli.address(node), f"{APP}.{DOMAIN}")[1]
                for _ in range(6)), 60)
        time.sleep(5)  # ...but the old instances stay while node-3's router lags
        assert len(_old_units(cli, new)) == 3, _app_units(cli)
        assert all("after the switch" not in http_get(cli.address("node-3"),
                                                      f"{APP}.{DOMAIN}")[1] for _ in range(3))
    finally:
        cli.inner("node-3", "kill", "-CONT", master)
    wait_for("node-3's router to serve the new release", lambda: all(
        "after the switch" in http_get(cli.address("node-3"), f"{APP}.{DOMAIN}")[1]
        for _ in range(6)), 60)
    wait_for("the old instances to retire", lambda: not _old_units(cli, new), 60)
    assert len(_app_units(cli)) == 3
