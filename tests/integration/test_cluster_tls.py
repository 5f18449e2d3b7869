"""A cluster formed the real way (``cluster up`` runs ``cluster init`` in node-1 and ``cluster
join`` in the others) talks mutual TLS: etcd's client and peer ports and the image route
refuse clients without a certificate of the cluster CA. A fourth machine joins with a token,
takes units and leaves; wrong and reused tokens join nothing."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipmate.cluster import spec as sp
from tests.integration.cluster_helpers import ClusterCli, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAME = "smtls"  # test_cluster.py uses smtest, test_cluster_paas.py smpaas
SUBNET = "172.30.11.0/24"
STATE = Path("/tmp/shipmate-cluster-tests")  # shared with the other cluster tests: wheelhouse
NODES = ("node-1", "node-2", "node-3")
PKI = sp.NODE_PKI


@pytest.fixture(scope="module")
def cli() -> Iterator[ClusterCli]:
    if subprocess.run(["docker", "image", "inspect", "shipmate/base:bookworm"],
                      capture_output=True).returncode != 0:
        pytest.skip("shipmate/base:bookworm is missing: run shipmate images:bootstrap")
    c = ClusterCli(NAME, SUBNET, STATE)
    c.cluster("down", check=False, timeout=300)
    # five members at most: the fourth machine becomes one, so leaving shows in member list
    c.cluster("up", "--subnet", SUBNET, "--etcd-members", "5", "--format", "json",
              timeout=1500)
    try:
        yield c
    finally:
        if not os.environ.get("SHIPMATE_TEST_KEEP_CLUSTER"):
            c.cluster("down", check=False, timeout=300)


def _members(cli: ClusterCli, node: str = "node-1") -> list[str]:
    out = cli.inner(node, "etcdctl", "--endpoints", "https://127.0.0.1:2379", "member", "list",
                    "-w", "json")
    return sorted(m.get("name", "") for m in json.loads(out)["members"])


def _host_pki(cli: ClusterCli) -> Path:
    return sp.host_pki_dir(cli.state_dir, cli.name)


def _s_client(address: str, port: int, ca: Path, *cert: str) -> subprocess.CompletedProcess[str]:
    # TLS 1.2: a refused client certificate fails the handshake itself (with 1.3 the client
    # only learns it at its first read)
    return subprocess.run(["openssl", "s_client", "-connect", f"{address}:{port}", "-tls1_2",
                           "-CAfile", str(ca), *cert], input="", capture_output=True,
                          text=True, timeout=30)


def test_etcd_refuses_clients_without_a_certificate_and_takes_ones_with(
        cli: ClusterCli) -> None:
    ca = _host_pki(cli) / "ca.crt"
    for node in NODES:
        for port in (2379, 2380):  # clients and peers
            res = _s_client(cli.address(node), port, ca)
            assert res.returncode != 0, f"{node}:{port} took a client without a certificate"
            assert "alert" in res.stderr + res.stdout, res.stderr
    # the host's client certificate (signed by node-1's CA at cluster up) is accepted
    ok = _s_client(cli.address("node-2"), 2379, ca, "-cert", str(_host_pki(cli) / "client.crt"),
                   "-key", str(_host_pki(cli) / "client.key"))
    assert ok.returncode == 0 and "Verify return code: 0 (ok)" in ok.stdout, ok.stderr
    # etcdctl with the machine's certificate works (ETCDCTL_CERT/KEY/CACERT in the node)
    health = subprocess.run(
        ["docker", "exec", f"{NAME}-node-3", "etcdctl", "--endpoints",
         ",".join(f"https://{cli.address(n)}:2379" for n in NODES), "endpoint", "health"],
        capture_output=True, text=True, timeout=60)
    assert (health.stdout + health.stderr).count("is healthy") == 3, health
    assert _members(cli) == list(NODES)
    # and the daemons are on etcd with their certificates
    st = cli.status()
    assert st["etcd_quorum"] is True
    assert all(n["daemon"].get("store") == "etcd" for n in st["nodes"]), st


def test_the_image_route_needs_a_cluster_certificate_even_from_an_allowed_address(
        cli: ClusterCli) -> None:
    url = f"https://{cli.address('node-1')}:{sp.API_PORT}/v1/images/shipmate/python:3.11"
    # node-2 is on the allowed network (api_clients is the cluster's subnet), without a cert
    res = subprocess.run(["docker", "exec", f"{NAME}-node-2", "curl", "-s", "--cacert",
                          f"{PKI}/ca.crt", url], capture_output=True, text=True, timeout=30)
    assert "a client certificate from the cluster CA is required" in res.stdout, res
    # the host is on the allowed network too (the gateway)
    res = subprocess.run(["curl", "-s", "--cacert", str(_host_pki(cli) / "ca.crt"), url],
                         capture_output=True, text=True, timeout=30)
    assert "a client certificate from the cluster CA is required" in res.stdout, res
    # with node-2's certificate the route answers on its merits (a base image is no app image)
    res = subprocess.run(["docker", "exec", f"{NAME}-node-2", "curl", "-s", "--cacert",
                          f"{PKI}/ca.crt", "--cert", f"{PKI}/machine.crt", "--key",
                          f"{PKI}/machine.key", url], capture_output=True, text=True,
                         timeout=30)
    assert "is not a Shipmate app image" in res.stdout, res
    # plain HTTP is not served at all
    res = subprocess.run(["docker", "exec", f"{NAME}-node-2", "curl", "-s", "-o", "/dev/null",
                          "-w", "%{http_code}", url.replace("https://", "http://")],
                         capture_output=True, text=True, timeout=30)
    assert res.stdout.strip() in ("000", "400"), res


def _token(cli: ClusterCli) -> str:
    out = cli.inner("node-1", "shipmate", "--format", "json", "cluster", "join-token")
    return str(json.loads(out)["token"])


def _join(cli: ClusterCli, token: str) -> subprocess.CompletedProcess[str]:
    node = cli.shape.node("node-1")
    args = sp.join_args(node, sp.Node(NAME, 4, sp.node_address(SUBNET, 4), True), token)
    return subprocess.run(["docker", "exec", f"{NAME}-node-4", *args], capture_output=True,
                          text=True, timeout=300)


def _not_joined(cli: ClusterCli) -> None:
    assert _members(cli) == list(NODES)
    assert cli.machines("node-1") == list(NODES)
    code = subprocess.run(["docker", "exec", f"{NAME}-node-4", "test", "-e",
                           f"{sp.NODE_STATE_DIR}/machine.json"]).returncode
    assert code != 0, "node-4 wrote a machine file for a refused join"


def _unit(i: int) -> str:
    return f"[Service]\nExecStart=/usr/bin/python3 -m http.server {8200 + i}\n"


def test_a_fourth_machine_joins_with_a_token_takes_units_and_leaves(
        cli: ClusterCli, tmp_path: Path) -> None:
    cli.cluster("up", "--subnet", SUBNET, "--nodes", "4", "--etcd-members", "5", "--no-join",
                timeout=900)
    token = _token(cli)
    secret = token.split(".")[1]
    wrong = token.replace(secret, "0" * 32)
    refused = _join(cli, wrong)
    assert refused.returncode != 0
    assert "the join token is unknown, expired or already used" in refused.stderr, refused
    _not_joined(cli)

    started = time.monotonic()
    joined = _join(cli, token)
    assert joined.returncode == 0, joined.stdout + joined.stderr
    print(f"node-4 joined in {time.monotonic() - started:.1f} s")
    assert json.loads(joined.stdout[joined.stdout.find("{"):])["etcd_member"] is True
    assert _members(cli) == [*NODES, "node-4"]
    wait_for("node-4 in list-machines", lambda: cli.machines("node-2") == [*NODES, "node-4"],
             60)

    files = []
    for i in range(1, 5):
        path = tmp_path / f"spread.{i}.service"
        path.write_text(_unit(i))
        files.append(str(path))
    cli.run("fleet", "start", *files, node="node-1", timeout=180)
    on_four = wait_for("a unit running on node-4", lambda: [
        u for u, (m, sub) in cli.units("node-1").items() if m == "node-4" and sub == "running"],
        60)

    left = subprocess.run(["docker", "exec", f"{NAME}-node-4", "shipmate", "cluster", "leave"],
                          capture_output=True, text=True, timeout=300)
    assert left.returncode == 0, left.stdout + left.stderr
    for unit in on_four:
        wait_for(f"{unit} running elsewhere", lambda unit=unit: cli.units("node-1").get(
            unit, ("", ""))[1] == "running" and cli.units("node-1")[unit][0] in NODES, 30)
    assert _members(cli) == list(NODES)
    wait_for("three machines again", lambda: cli.machines("node-1") == list(NODES), 30)
    leftover = cli.inner("node-4", "sh", "-c", "pgrep -f 'http[.]server 82' || true")
    assert leftover.strip() == "", "a unit still runs on the machine that left"

    # the token was used: it joins nothing a second time
    reused = _join(cli, token)
    assert reused.returncode != 0
    assert "the join token is unknown, expired or already used" in reused.stderr, reused
    _not_joined(cli)

    # the audit trail has every join, refused ones too, with the joining machine as the actor
    out = cli.inner("node-1", "shipmate", "events", "--num", "200", "--format", "json")
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    joins = [(e["actor"], e["outcome"]) for e in events
             if e["verb"] == "cluster:join" and e["actor"] == "node-4"]
    assert {e["actor"] for e in events if e["verb"] == "cluster:join"} == {
        "node-2", "node-3", "node-4"}  # cluster up joined the first three
    assert joins == [("node-4", "refused"), ("node-4", "ok"), ("node-4", "refused")], events
    assert any(e["verb"] == "cluster:leave" for e in events), events


def test_a_dead_machine_is_removed_from_another(cli: ClusterCli) -> None:
    joined = _join(cli, _token(cli))  # a fresh token: node-4 joins again after leaving
    assert joined.returncode == 0, joined.stdout + joined.stderr
    assert _members(cli) == [*NODES, "node-4"]
    wait_for("node-4 in list-machines", lambda: cli.machines("node-1") == [*NODES, "node-4"],
             60)
    cli.cluster("kill", "node-4")
    started = time.monotonic()
    out = cli.run("cluster", "remove", "node-4", node="node-2").stdout
    assert "Removed node-4 and its etcd member" in out, out
    # its lease was revoked: gone at once, not after the TTL
    assert cli.machines("node-1") == list(NODES)
    print(f"node-4 removed in {time.monotonic() - started:.1f} s")
    assert _members(cli) == list(NODES)
    assert cli.status()["etcd_quorum"] is True
