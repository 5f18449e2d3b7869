"""The cluster's etcd members, seen from the host: health and leadership of each member over
etcd's HTTPS endpoints (``/health``, the v3 gateway's ``maintenance/status``), with the host's
client certificate (:func:`shipmate.cluster.spec.host_pki_dir`; the members require one).

The members themselves run inside the first three nodes (``cluster init``/``join`` there
start them under the supervisor).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp

from shipmate.cluster.spec import Cluster, Node, host_pki_dir
from shipmate.errors import ClusterError


def host_tls(state_dir: Path, cluster: str) -> ssl.SSLContext | None:
    """The host's client TLS for the cluster's etcd, or None before ``cluster up`` made it."""
    pki = host_pki_dir(state_dir, cluster)
    if not (pki / "client.crt").exists():
        return None
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "client.crt"), str(pki / "client.key"))
    return ctx


async def member_status(node: Node, tls: ssl.SSLContext | None, *,
                        timeout: float = 2.0) -> dict[str, Any]:
    """One member: ``health`` (healthy, unhealthy or unreachable), ``leader`` and, when it
    answers, its ``version`` and raft ``revision``."""
    out: dict[str, Any] = {"name": node.name, "endpoint": node.etcd_client_url,
                           "health": "unreachable", "leader": False}
    if tls is None:
        return out
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout),
                                         connector=aiohttp.TCPConnector(ssl=tls)) as s:
            async with s.get(node.etcd_client_url + "/health") as resp:
                body = await resp.json(content_type=None)
                healthy = resp.status == 200 and str(body.get("health")) == "true"
                out["health"] = "healthy" if healthy else "unhealthy"
            async with s.post(node.etcd_client_url + "/v3/maintenance/status", json={}) as resp:
                st = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return out
    header = st.get("header", {})
    out.update(version=st.get("version"), revision=int(header.get("revision", 0)),
               leader=bool(st.get("leader")) and st.get("leader") == header.get("member_id"))
    return out


async def cluster_status(cluster: Cluster, state_dir: Path) -> list[dict[str, Any]]:
    """Every member's :func:`member_status`, in node order."""
    tls = host_tls(state_dir, cluster.name)
    return list(await asyncio.gather(*(member_status(n, tls) for n in cluster.etcd_nodes)))


def has_quorum(members: list[dict[str, Any]]) -> bool:
    """True when a majority of the members is healthy."""
    healthy = sum(1 for m in members if m["health"] == "healthy")
    return healthy * 2 > len(members)


async def wait_healthy(cluster: Cluster, state_dir: Path, *,
                       timeout: float = 60.0) -> list[dict[str, Any]]:
    """Wait until every member is healthy; raise with the members' states after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        members = await cluster_status(cluster, state_dir)
        if all(m["health"] == "healthy" for m in members):
            return members
        if time.monotonic() > deadline:
            states = ", ".join(f"{m['name']}: {m['health']}" for m in members)
            raise ClusterError(f"the etcd cluster is not healthy after {timeout:.0f}s ({states})",
                               hint="see STATE_DIR/cluster/NAME/node-N/etcd.log")
        await asyncio.sleep(0.5)
