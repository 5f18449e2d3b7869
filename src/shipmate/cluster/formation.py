"""``cluster up``'s second half: the machines form the cluster the way real machines do.
``shipmate cluster init`` runs in node-1 and ``shipmate cluster join`` (with a fresh token
from node-1) in each other node, one at a time, through ``docker exec``; then the host gets a
client certificate of the cluster CA for ``cluster status`` and the benches."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from shipmate.cluster import ca, docker
from shipmate.cluster import spec as sp
from shipmate.errors import ClusterError

Progress = Callable[[str], None]
MACHINE_FILE = sp.NODE_STATE_DIR + "/machine.json"


async def in_cluster(node: sp.Node) -> bool:
    """True when the node has joined (or initialised) the cluster."""
    code, _ = await docker.run(["exec", node.container, "test", "-f", MACHINE_FILE],
                               check=False)
    return code == 0


async def _json(node: sp.Node, args: Sequence[str]) -> dict[str, object]:
    code, out = await docker.run(["exec", node.container, *args], check=False, timeout=240)
    if code != 0:
        raise ClusterError(f"`{' '.join(args[:5])} ...` failed in {node.name}: "
                           f"{out.strip()[-1500:]}",
                           hint=f"see `shipmate cluster logs {node.name}` (-s supervise)")
    start = out.find("{")  # progress lines of the command come before its JSON
    return dict(json.loads(out[start:])) if start >= 0 else {}


async def form(cluster: sp.Cluster, state_dir: Path, *, join: bool = True,
               progress: Progress) -> list[str]:
    """Init node-1 if needed, then join every node that is not in the cluster yet; with
    ``join`` False nothing is initialised or joined (new machines are left for a person to
    init or join by hand). The names of the nodes that joined now."""
    first, *others = cluster.nodes
    if not await in_cluster(first):
        if not join:
            return []
        progress(f"cluster init on {first.name} (cluster CA, etcd with TLS, daemon)")
        await _json(first, sp.init_args(cluster, first))
    await host_certificate(cluster, state_dir)
    joined = []
    for node in others if join else []:
        if await in_cluster(node):
            continue
        token = (await _json(first, ["shipmate", "--format", "json", "cluster",
                                     "join-token", "--ttl", "300"]))["token"]
        role = "etcd member" if node.etcd else "etcd client"
        progress(f"cluster join on {node.name} with a token from {first.name} ({role})")
        await _json(node, sp.join_args(first, node, str(token)))
        joined.append(node.name)
    return joined


async def host_certificate(cluster: sp.Cluster, state_dir: Path) -> Path:
    """The host's client certificate (``sp.host_pki_dir``), signed by node-1's CA: made
    once per cluster (and again when node-1 has a new CA)."""
    first = cluster.nodes[0]
    target = sp.host_pki_dir(state_dir, cluster.name)
    _, ca_pem = await docker.run(["exec", first.container, "cat",
                                  sp.NODE_PKI + "/" + ca.CA_CERT])
    existing = target / "ca.crt"
    if existing.exists() and existing.read_text() == ca_pem and (target / "client.crt").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    os.chmod(target, 0o700)
    key = ca.new_key()
    _, cert = await docker.run(["exec", "-i", first.container, "shipmate", "cluster", "sign",
                                "operator"], stdin=ca.make_csr(key, "operator"))
    ca.write_private(target / "client.key", ca.key_pem(key))
    ca.write_private(target / "client.crt", cert.encode())
    ca.write_private(target / "ca.crt", ca_pem.encode())
    return target
