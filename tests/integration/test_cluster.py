"""A real local cluster: `shipmate cluster up` (Docker-in-Docker nodes, a three-member etcd,
a daemon per node), the code.it walk-through through every node's router, then partition,
heal, kill and restart. One cluster for the module; its nodes' image volumes are kept, so a
rerun neither rebuilds an unchanged node image nor reloads the images into the nodes."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster_helpers import ClusterCli, codeit_unit, http_get, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAME = "smtest"
SUBNET = "172.30.7.0/24"
STATE = Path("/tmp/shipmate-cluster-tests")  # fixed: keeps the node image's wheelhouse
NODES = ("node-1", "node-2", "node-3")
UNITS = ("codeit.1.container", "codeit.2.container", "codeit.3.container")
INSTANCE = "shipmate.instance"


@pytest.fixture(scope="module")
def cli() -> Iterator[ClusterCli]:
    if subprocess.run(["docker", "image", "inspect", "shipmate/base:bookworm"],
                      capture_output=True).returncode != 0:
        pytest.skip("shipmate/base:bookworm is missing: run shipmate images:bootstrap")
    c = ClusterCli(NAME, SUBNET, STATE)
    c.cluster("down", check=False)
    started = time.monotonic()
    res = c.cluster("up", "--subnet", SUBNET, "--format", "json", timeout=1200)
    up = json.loads(res.stdout)
    print(f"cluster up: {time.monotonic() - started:.1f} s, {up['seconds']}")
    try:
        yield c
    finally:
        if not os.environ.get("SHIPMATE_TEST_KEEP_CLUSTER"):  # kept: to look at after a failure
            c.cluster("down", check=False, timeout=300)


def _bodies(cli: ClusterCli, node: str, n: int = 9) -> Counter[str]:
    out: Counter[str] = Counter()
    for _ in range(n):
        status, body = http_get(cli.address(node), "code.it")
        out[body if status == 200 else f"HTTP {status}"] += 1
    return out


def _only(cli: ClusterCli, node: str, allowed: set[str], n: int = 6) -> Counter[str] | None:
    """The router's answers when all came from ``allowed`` instances, else None."""
    bodies = _bodies(cli, node, n)
    return bodies if set(bodies) <= allowed else None


def _running_elsewhere(cli: ClusterCli, node: str, unit: str, victim: str) -> str | None:
    machine, sub = cli.units(node).get(unit, ("", ""))
    return machine if sub == "running" and machine not in ("", victim) else None


def _registry_matches(cli: ClusterCli) -> bool:
    """Each code.it unit runs exactly once, where ``list-units`` says (fails on a duplicate)."""
    where = {n: cli.running_labels(n, INSTANCE) for n in NODES}
    running = Counter(v for found in where.values() for v in found)
    assert all(c == 1 for c in running.values()), f"a unit runs twice: {where}"
    if running != Counter({"web.1": 1, "web.2": 1, "web.3": 1}):
        return False
    units = cli.units("node-1")
    return all(units.get(f"codeit.{inst.split('.')[1]}.container", ("", ""))[:2]
               == (node, "running") for node, found in where.items() for inst in found)


def test_every_node_runs_dockerd_etcd_and_a_daemon(cli: ClusterCli) -> None:
    st = cli.status()
    assert st["etcd_quorum"] is True
    assert [n["name"] for n in st["nodes"]] == list(NODES)
    for n in st["nodes"]:
        assert n["state"] == "running" and n["connected"]
        assert n["address"] == cli.address(n["name"])
        assert n["etcd"]["health"] == "healthy"
        assert n["daemon"]["machine_id"] == n["name"] and n["daemon"]["store"] == "etcd"
    assert sum(n["etcd"]["leader"] for n in st["nodes"]) == 1
    # the nodes' own engines have the host's base images, without a registry
    images = cli.inner("node-2", "docker", "images", "--format", "{{.Repository}}:{{.Tag}}")
    assert "shipmate/python:3.11" in images.split()


def test_fleet_sees_three_machines_from_every_node(cli: ClusterCli) -> None:
    for node in NODES:
        assert cli.machines(node) == list(NODES)
    # and the CLI installed inside a node says the same
    out = cli.inner("node-3", "shipmate", "fleet", "list-machines", "--no-legend")
    assert sorted(line.split()[1] for line in out.splitlines()) == sorted(
        cli.address(n) for n in NODES)


def test_walkthrough_one_per_machine_and_every_router_balances(
        cli: ClusterCli, tmp_path: Path) -> None:
    files = []
    for i in (1, 2, 3):
        path = tmp_path / f"codeit.{i}.container"
        path.write_text(codeit_unit(i))
        files.append(str(path))
    cli.run("fleet", "start", *files, node="node-1", timeout=180)
    units = cli.units("node-2")
    assert sorted(units) == list(UNITS)
    assert sorted(m for m, _ in units.values()) == list(NODES)
    # `launched` (what start waits for, as fleetctl does) means the agent has started the
    # unit; its container may still be starting (an image to fetch from a peer, under load).
    wait_for("every unit running", lambda: all(
        sub == "running" for _, sub in cli.units("node-2").values()), 60)
    for key, value in (("/shipmate/routes/domains/codeit", '{"domains": ["code.it"]}'),
                       ("/shipmate/routes/active/codeit", '{"release": "*"}')):
        # etcd takes clients with a certificate of the cluster CA only: the node's own
        cli.inner("node-1", "etcdctl", "--endpoints", "https://127.0.0.1:2379", "put", key, value)
    want = Counter({"codeit-1": 3, "codeit-2": 3, "codeit-3": 3})
    for node in NODES:  # round robin over the three live endpoints, on every machine
        wait_for(f"{node}'s router to balance", lambda: _bodies(cli, node) == want, 30)


def test_partition_stops_the_cut_off_units_and_heal_leaves_no_duplicates(
        cli: ClusterCli) -> None:
    victim = cli.units("node-1")["codeit.2.container"][0]
    others = [n for n in NODES if n != victim]
    cli.cluster("partition", victim)
    try:
        # the cut-off machine stops its units once its lease is gone
        wait_for(f"{victim} to stop its units",
                 lambda: not cli.running_labels(victim, INSTANCE), 30)
        for node in others:
            wait_for(f"{node} to forget {victim}", lambda: cli.machines(node) == others, 30)
            # every request answered, and only by live instances
            wait_for(f"{node}'s router to drop {victim}",
                     lambda: _only(cli, node, {"codeit-1", "codeit-3"}), 30)
    finally:  # a failure here must not leave the later tests a partitioned cluster
        cli.cluster("heal", victim)
    for node in NODES:
        wait_for(f"{node} to see three machines again", lambda: cli.machines(node)
                 == list(NODES), 60)
    wait_for("codeit.2 running again", lambda: cli.units("node-3").get(
        "codeit.2.container", ("", ""))[1] == "running", 60)
    # the registry comes to say where each unit runs, and it runs there; never twice
    wait_for("the registry to match what runs", lambda: _registry_matches(cli), 20)
    time.sleep(3)  # a late duplicate would show now
    assert _registry_matches(cli)


def test_kill_moves_units_and_routers_drop_the_dead_machine(
        cli: ClusterCli, tmp_path: Path) -> None:
    mover = tmp_path / "mover.service"
    mover.write_text("[Service]\nExecStart=/usr/bin/python3 -m http.server 8099\n")
    cli.run("fleet", "start", str(mover), node="node-1", timeout=120)
    victim = cli.units("node-1")["mover.service"][0]
    survivors = [n for n in NODES if n != victim]
    before = {n: cli.inner(n, "docker", "ps", "-q", "--no-trunc").split() for n in survivors}
    lost = {u for u, (m, _) in cli.units("node-1").items() if m == victim and "codeit" in u}
    killed = time.monotonic()
    cli.cluster("kill", victim)
    moved_to = wait_for("mover.service to run elsewhere", lambda: _running_elsewhere(
        cli, survivors[0], "mover.service", victim), 30)
    print(f"mover.service ran on {moved_to} {time.monotonic() - killed:.1f} s after the kill")
    assert moved_to in survivors
    live = {f"codeit-{u.split('.')[1]}" for u in UNITS if u not in lost}
    for node in survivors:
        wait_for(f"{node}'s router to drop {victim}", lambda: _only(cli, node, live), 30)
    # losing one etcd member of three restarted nothing on the survivors
    for node in survivors:
        now = cli.inner(node, "docker", "ps", "-q", "--no-trunc").split()
        assert set(before[node]) <= set(now)
    assert cli.status()["etcd_quorum"] is True
    # no unit runs twice: the dead machine's code.it waits (it conflicts with the others)
    running = Counter(v for n in survivors for v in cli.running_labels(n, INSTANCE))
    assert all(c == 1 for c in running.values()) and len(running) == 2


def test_a_restarted_machine_rejoins_and_takes_work_again(cli: ClusterCli) -> None:
    dead = [n["name"] for n in cli.status()["nodes"] if n["state"] != "running"]
    assert len(dead) == 1, "runs after the kill test"
    cli.cluster("start", dead[0])
    alive = next(n for n in NODES if n != dead[0])
    wait_for(f"{dead[0]} back in list-machines",
             lambda: cli.machines(alive) == list(NODES), 90)
    wait_for("all three code.it units running, one per machine", lambda: sorted(
        m for u, (m, sub) in cli.units(alive).items()
        if u.startswith("codeit") and sub == "running") == list(NODES), 90)
    running = Counter(v for n in NODES for v in cli.running_labels(n, INSTANCE))
    assert running == Counter({"web.1": 1, "web.2": 1, "web.3": 1})
