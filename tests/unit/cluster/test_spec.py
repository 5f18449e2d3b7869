"""The cluster's shape, names, etcd strings, docker run arguments and node image inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shipmate.cluster import etcd, remote
from shipmate.cluster import spec as sp
from shipmate.errors import NotFoundError, ValidationError


def test_plan_addresses_and_members() -> None:
    c = sp.plan("demo", 5, "172.30.5.0/24")
    assert [n.name for n in c.nodes] == ["node-1", "node-2", "node-3", "node-4", "node-5"]
    assert [n.address for n in c.nodes] == [f"172.30.5.{10 + i}" for i in range(1, 6)]
    assert [n.name for n in c.etcd_nodes] == ["node-1", "node-2", "node-3"]
    assert c.network == "demo-cluster" and c.gateway == "172.30.5.1"
    assert c.nodes[1].container == "demo-node-2" and c.nodes[1].volume == "demo-node-2-docker"


def test_small_cluster_has_as_many_members_as_nodes() -> None:
    c = sp.plan(nodes=1)
    assert [n.name for n in c.etcd_nodes] == ["node-1"]
    assert c.nodes[0].etcd_client_url == "https://172.30.0.11:2379"


def test_five_members_on_request() -> None:
    c = sp.plan(nodes=6, etcd_members=5)
    assert [n.name for n in c.etcd_nodes] == [f"node-{i}" for i in range(1, 6)]
    with pytest.raises(ValidationError, match="3 or 5"):
        sp.plan(nodes=3, etcd_members=4)


def test_init_then_join_arguments() -> None:
    c = sp.plan("demo", 3, "172.30.5.0/24")
    init = sp.init_args(c, c.nodes[0])
    assert init[:5] == ["shipmate", "--format", "json", "cluster", "init"]
    assert "--address" in init and "172.30.5.11" in init and "demo" in init
    join = sp.join_args(c.nodes[0], c.nodes[2], "TOKEN")
    assert join[4:7] == ["join", "172.30.5.11", "TOKEN"]
    assert join[join.index("--name") + 1] == "node-3"
    assert join[join.index("--log-dir") + 1] == sp.NODE_RUN_DIR


@pytest.mark.parametrize(("name", "nodes", "subnet"), [
    ("Bad", 3, sp.DEFAULT_SUBNET), ("a;b", 3, sp.DEFAULT_SUBNET), ("ok", 0, sp.DEFAULT_SUBNET),
    ("ok", 51, sp.DEFAULT_SUBNET), ("ok", 3, "172.30.0.0/29"), ("ok", 3, "nonsense"),
    ("ok", 3, "fd00::/64"),
])
def test_plan_refuses(name: str, nodes: int, subnet: str) -> None:
    with pytest.raises(ValidationError):
        sp.plan(name, nodes, subnet)


def test_node_lookup() -> None:
    c = sp.plan()
    assert c.node("node-3").address == "172.30.0.13"
    with pytest.raises(ValidationError, match="no node"):
        c.node("node-4")
    for bad in ("node-0", "node-x", "../node-1", "node-1;id", "NODE-1"):
        with pytest.raises(ValidationError):
            c.node(bad)


def test_etcd_env_is_timing_and_etcdctl_certificates_only() -> None:
    env = sp.etcd_env()
    # the member's identity and TLS come from `cluster init`/`join` on its command line
    assert not {"ETCD_NAME", "ETCD_INITIAL_CLUSTER", "ETCD_LISTEN_CLIENT_URLS"} & set(env)
    assert int(env["ETCD_ELECTION_TIMEOUT"]) >= 10 * int(env["ETCD_HEARTBEAT_INTERVAL"])
    assert env["ETCDCTL_CERT"].startswith(sp.NODE_PKI)


def test_daemon_env() -> None:
    c = sp.plan()
    env = sp.daemon_env(c, {"SHIPMATE_AGENT_TTL": "2"})
    # the store, machine ID and address come from machine.json (cluster init/join)
    assert not {"SHIPMATE_STORE", "SHIPMATE_MACHINE_ID", "SHIPMATE_ETCD_ENDPOINTS"} & set(env)
    assert env["SHIPMATE_API_CLIENTS"] == c.subnet
    assert env["SHIPMATE_SOCKET"] == "/run/shipmate/shipmate.sock"
    assert env["SHIPMATE_ROUTER"] == "1" and env["SHIPMATE_SSH"] == "1"
    assert env["SHIPMATE_AGENT_TTL"] == "2"
    assert env["SHIPMATE_CLUSTER_ETCD_MEMBERS"] == "3"


def test_run_args_use_the_dind_recipe(tmp_path: Path) -> None:
    c = sp.plan()
    args = sp.run_args(c, c.nodes[0], "shipmate/node-machine:abc", tmp_path / "n1")
    joined = " ".join(args)
    assert ("--cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined "
            "--security-opt apparmor=unconfined --security-opt systempaths=unconfined "
            "-v /sys/fs/cgroup:/sys/fs/cgroup:rw --cgroupns host") in joined
    assert "--privileged" not in args
    assert args[-1] == "shipmate/node-machine:abc"
    assert "--network shipmate-cluster --ip 172.30.0.11" in joined
    assert f"-v {tmp_path / 'n1'}:/run/shipmate" in joined
    assert "-v shipmate-node-1-docker:/var/lib/docker" in joined
    assert "-e ETCD_HEARTBEAT_INTERVAL=50" in joined and "-e SHIPMATE_SSH=1" in joined
    assert "--label io.shipmate.cluster.node=node-1" in joined


def test_parse_env() -> None:
    assert sp.parse_env(["SHIPMATE_AGENT_TTL=2", "SHIPMATE_X=a=b"]) == {
        "SHIPMATE_AGENT_TTL": "2", "SHIPMATE_X": "a=b"}
    for bad in ("PATH=/x", "SHIPMATE_TTL", "shipmate_x=1", "SHIPMATE_A B=1"):
        with pytest.raises(ValidationError):
            sp.parse_env([bad])


def test_parse_target() -> None:
    assert sp.parse_target("node-2") == ("shipmate", "node-2")
    assert sp.parse_target("demo/node-12") == ("demo", "node-12")
    for bad in ("node", "demo/", "../node-1", "a/b/node-1", "Demo/node-1"):
        with pytest.raises(ValidationError):
            sp.parse_target(bad)


def test_from_labels_round_trip() -> None:
    c = sp.plan("demo", 4, "172.30.5.0/24")
    found = sp.from_labels("demo", c.subnet, [sp.labels(n, "img") for n in reversed(c.nodes)]
                           + [{sp.LABEL_CLUSTER: "other", sp.LABEL_NODE: "node-9"}])
    assert found == c


def test_inputs_hash_and_image_ref() -> None:
    a = sp.inputs_hash({"Dockerfile": b"x", "src/a.py": b"1"})
    assert a == sp.inputs_hash({"src/a.py": b"1", "Dockerfile": b"x"})
    assert a != sp.inputs_hash({"Dockerfile": b"x", "src/a.py": b"2"})
    assert a != sp.inputs_hash({"Dockerfile": b"x1", "src/a.py": b""})  # no ambiguity
    assert sp.image_ref(a) == f"shipmate/node-machine:{a[:12]}"


def test_runtime_requirements_stop_at_dev() -> None:
    text = "# pinned\naiohttp==1\n# dev\npytest==2\n"
    assert sp.runtime_requirements(text) == "# pinned\naiohttp==1\n"


def test_dockerfile() -> None:
    text = sp.dockerfile_text()
    assert "FROM ${BASE}" in text and "ARG BASE=shipmate/base:bookworm" in text
    for pkg in ("docker.io", "nginx", "etcd-server", "git", "python3-venv"):
        assert pkg in text
    assert "--no-index --find-links" in text  # pip never reaches an index in the build
    assert 'ENTRYPOINT ["/usr/local/bin/shipmate-node-init"]' in text
    assert sp.launcher_text().startswith("#!/bin/sh\nexec /opt/shipmate/venv/bin/python")


def test_quorum() -> None:
    def members(*health: str) -> list[dict[str, Any]]:
        return [{"health": h} for h in health]

    assert etcd.has_quorum(members("healthy", "healthy", "unreachable"))
    assert not etcd.has_quorum(members("healthy", "unhealthy", "unreachable"))


def test_node_socket(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="node-2"):
        remote.node_socket(tmp_path, "node-2")
    sock = sp.host_dir(tmp_path, "demo", "node-2") / "shipmate.sock"
    sock.parent.mkdir(parents=True)
    sock.touch()
    assert remote.node_socket(tmp_path, "demo/node-2") == sock
    with pytest.raises(ValidationError):
        remote.node_socket(tmp_path, "demo/../node-2")
