"""Node containers and the cluster network: create, find, remove, and fault injection
(``kill`` is SIGKILL of the whole machine; ``partition`` disconnects it from the network, so
its address is gone for everyone; ``heal`` connects it again at the same address)."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipmate.cluster import docker
from shipmate.cluster import spec as sp
from shipmate.errors import ClusterError, NotFoundError


async def ensure_network(cluster: sp.Cluster) -> None:
    """Create the cluster network with its fixed subnet, or check the existing one has it."""
    found = await docker.inspect("network", [cluster.network])
    if found:
        configs = found[0].get("IPAM", {}).get("Config") or [{}]
        subnet = configs[0].get("Subnet")
        if subnet != cluster.subnet:
            raise ClusterError(f"network {cluster.network} exists with subnet {subnet}",
                               hint=f"`shipmate cluster down --name {cluster.name}` first, "
                                    f"or use --subnet {subnet}")
        return
    await docker.run(["network", "create", "--driver", "bridge", "--subnet", cluster.subnet,
                      "--gateway", cluster.gateway, "--label", f"{sp.LABEL_CLUSTER}={cluster.name}",
                      cluster.network])


async def node_containers(name: str) -> dict[str, dict[str, Any]]:
    """The cluster's node containers (any state), inspected, by node name."""
    found = await docker.containers(f"{sp.LABEL_CLUSTER}={name}")
    return {c["Config"]["Labels"].get(sp.LABEL_NODE, ""): c for c in found}


async def discover(name: str) -> tuple[sp.Cluster, dict[str, dict[str, Any]]]:
    """The running cluster ``name`` (from its containers' labels and its network) and its
    containers; NotFoundError when there is none."""
    sp.validate_cluster_name(name)
    containers = await node_containers(name)
    if not containers:
        raise NotFoundError(f"no cluster {name!r} runs here",
                            hint="start one with `shipmate cluster up`")
    net = await docker.inspect("network", [f"{name}-cluster"])
    subnet = ((net[0].get("IPAM", {}).get("Config") or [{}])[0].get("Subnet", "")
              if net else "")
    cluster = sp.from_labels(name, subnet, [c["Config"]["Labels"] for c in containers.values()])
    return cluster, containers


def is_running(container: Mapping[str, Any]) -> bool:
    """True while the node container runs."""
    return bool(container.get("State", {}).get("Running"))


def is_connected(cluster: sp.Cluster, container: Mapping[str, Any]) -> bool:
    """True when the node is attached to the cluster network (not partitioned)."""
    return cluster.network in (container.get("NetworkSettings", {}).get("Networks") or {})


async def start_node(cluster: sp.Cluster, node: sp.Node, image: str, state_dir: Path,
                     extra_env: Mapping[str, str] | None = None) -> bool:
    """Run ``node`` from ``image``, replacing a container of another image or a stopped one.
    False when it already runs from ``image`` (left alone)."""
    current = await docker.inspect("container", [node.container])
    if current and is_running(current[0]) and current[0]["Config"]["Image"] == image:
        return False
    if current:
        await docker.run(["rm", "-f", node.container])
    run_dir = sp.host_dir(state_dir, cluster.name, node.name)
    await asyncio.to_thread(run_dir.mkdir, parents=True, exist_ok=True)
    (run_dir / "shipmate.sock").unlink(missing_ok=True)
    await docker.run(["run", *sp.run_args(cluster, node, image, run_dir, extra_env)])
    return True


async def wait_dockerd(node: sp.Node, *, timeout: float = 60.0) -> None:
    """Wait until the Docker engine inside ``node`` answers."""
    deadline = time.monotonic() + timeout
    while True:
        code, out = await docker.run(["exec", node.container, "docker", "version", "--format",
                                      "{{.Server.Version}}"], check=False, timeout=30)
        if code == 0:
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"the Docker engine in {node.name} did not start: {out.strip()}",
                               hint=f"see {node.name}'s dockerd.log (cluster status shows where)")
        await asyncio.sleep(0.3)


async def remove_inner_containers(node: sp.Node) -> int:
    """Remove containers a previous cluster left in the node's kept Docker volume, and their
    volumes (a new cluster starts with an empty store, so nothing should run yet, and a new
    service of an old name must not find the old one's data and password). Returns how
    many containers."""
    _, out = await docker.run(["exec", node.container, "docker", "ps", "-aq"])
    ids = out.split()
    if ids:
        await docker.run(["exec", node.container, "docker", "rm", "-f", *ids], check=False)
    _, out = await docker.run(["exec", node.container, "docker", "volume", "ls", "-q"])
    if out.split():
        await docker.run(["exec", node.container, "docker", "volume", "rm", *out.split()],
                         check=False)
    return len(ids)


async def remove_all(name: str, state_dir: Path, *, purge: bool = False) -> list[str]:
    """Remove the cluster's nodes and network (and with ``purge`` the nodes' Docker volumes
    holding their loaded images). Returns the node names removed."""
    containers = await node_containers(name)
    if containers:
        await docker.run(["rm", "-f", "-v", *(c["Id"] for c in containers.values())],
                         timeout=180)
    await docker.run(["network", "rm", f"{name}-cluster"], check=False)
    if purge:
        _, out = await docker.run(["volume", "ls", "-q", "--filter", f"name={name}-node-"])
        volumes = [v for v in out.split() if re.fullmatch(rf"{name}-node-[0-9]+-docker", v)]
        if volumes:
            await docker.run(["volume", "rm", *volumes], check=False)
    await asyncio.to_thread(shutil.rmtree, Path(state_dir) / "cluster" / name, True)
    return sorted(containers)


async def _one(name: str, node: str) -> tuple[sp.Cluster, sp.Node, dict[str, Any]]:
    cluster, containers = await discover(name)
    target = cluster.node(node)
    return cluster, target, containers[target.name]


async def kill(name: str, node: str) -> None:
    """SIGKILL the machine: its container, with dockerd, etcd, the daemon and every unit."""
    _, target, container = await _one(name, node)
    if not is_running(container):
        raise ClusterError(f"{target.name} is not running", hint="start it: cluster start NODE")
    await docker.run(["kill", "--signal", "KILL", target.container])


async def start(name: str, node: str) -> None:
    """Start a killed machine again (same container, address, etcd data and volume)."""
    _, target, container = await _one(name, node)
    if not is_running(container):
        await docker.run(["start", target.container])


async def partition(name: str, node: str) -> None:
    """Cut the machine off: disconnect it from the cluster network (and so from the host)."""
    cluster, target, container = await _one(name, node)
    if is_connected(cluster, container):
        await docker.run(["network", "disconnect", cluster.network, target.container])


async def heal(name: str, node: str) -> None:
    """Connect a partitioned machine again, at its own address."""
    cluster, target, container = await _one(name, node)
    if not is_connected(cluster, container):
        await docker.run(["network", "connect", "--ip", target.address, cluster.network,
                          target.container])
