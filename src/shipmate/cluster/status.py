"""``cluster status``: every node's container, address, network attachment, etcd member and
Shipmate daemon, gathered in parallel from the host."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from shipmate.cluster import etcd, nodes
from shipmate.cluster import spec as sp
from shipmate.config import Config
from shipmate.errors import ClusterError, ShipmateError


async def daemon_status(config: Config, cluster: str, node: str,
                        *, timeout: float = 3.0) -> dict[str, Any]:
    """The node's daemon ``/v1/status`` through its socket on the host, digested, or
    ``{"error": ...}`` when it does not answer."""
    from shipmate.httpapi.client import DaemonClient

    sock = sp.host_dir(config.state_dir, cluster, node) / "shipmate.sock"
    client = DaemonClient(sock, timeout=timeout)
    try:
        data = await client.request("GET", "/v1/status", timeout=timeout)
    except ShipmateError as exc:
        return {"error": exc.message}
    return {"machine_id": data["daemon"]["machine_id"], "pid": data["daemon"]["pid"],
            "uptime": data["daemon"]["uptime"], "store": data["store"]["backend"],
            "components": {c["name"]: c["state"] for c in data.get("components", [])}}


async def collect(config: Config, name: str) -> dict[str, Any]:
    """The cluster's state as one JSON-able dict (``cluster status --format json``)."""
    cluster, containers = await nodes.discover(name)
    members_task = asyncio.ensure_future(etcd.cluster_status(cluster, config.state_dir))
    daemons = await asyncio.gather(*(daemon_status(config, name, n.name) for n in cluster.nodes))
    members = {m["name"]: m for m in await members_task}
    rows = []
    for node, daemon in zip(cluster.nodes, daemons, strict=True):
        container = containers[node.name]
        rows.append({
            "name": node.name, "container": node.container, "address": node.address,
            "state": container.get("State", {}).get("Status", "unknown"),
            "connected": nodes.is_connected(cluster, container),
            "image": container["Config"]["Image"],
            "etcd": members.get(node.name), "daemon": daemon,
            "logs": str(sp.host_dir(config.state_dir, name, node.name)),
        })
    member_list = list(members.values())
    return {"name": cluster.name, "network": cluster.network, "subnet": cluster.subnet,
            "nodes": rows, "etcd_quorum": etcd.has_quorum(member_list) if member_list else False}


async def wait_daemons(config: Config, cluster: sp.Cluster, *, timeout: float = 90.0) -> None:
    """Wait until every node's daemon answers ``/v1/status``."""
    deadline = time.monotonic() + timeout
    pending = [n.name for n in cluster.nodes]
    while pending:
        answers = await asyncio.gather(*(daemon_status(config, cluster.name, n)
                                         for n in pending))
        pending = [n for n, a in zip(pending, answers, strict=True) if "error" in a]
        if pending and time.monotonic() > deadline:
            log = Path(sp.host_dir(config.state_dir, cluster.name, pending[0])) / "daemon.log"
            raise ClusterError(f"no Shipmate daemon answers on {', '.join(pending)} after "
                               f"{timeout:.0f}s", hint=f"see {log}")
        if pending:
            await asyncio.sleep(0.5)
