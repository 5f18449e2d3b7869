"""``shipmate --cluster NODE ...`` (or ``SHIPMATE_CLUSTER=NODE``): run a command against a
node's daemon. Each node's daemon socket is bind-mounted on the host, so the CLI simply talks
to that socket; local files (``fleet submit ./x.service``) are read on the host as usual."""

from __future__ import annotations

from pathlib import Path

from shipmate.cluster import spec as sp
from shipmate.errors import NotFoundError


def node_socket(state_dir: Path, target: str) -> Path:
    """The host path of the daemon socket of ``target`` (``node-2`` or ``CLUSTER/node-2``)."""
    cluster, node = sp.parse_target(target)
    sock = sp.host_dir(state_dir, cluster, node) / "shipmate.sock"
    if not sock.exists():
        raise NotFoundError(f"no daemon of {node} (cluster {cluster}) answers here: "
                            f"{sock} is missing",
                            hint="see `shipmate cluster status`; start one with "
                                 "`shipmate cluster up`")
    return sock
