"""A machine's place in a cluster, as ``cluster init`` / ``cluster join`` leave it in
``STATE_DIR/machine.json``, and what follows from it (pure): the etcd member's command line
and the daemon's settings. :mod:`shipmate.cluster.supervise` runs both from this file.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
from pathlib import Path
from typing import Any

from shipmate.cluster.ca import pki
from shipmate.errors import ValidationError

MACHINE_FILE = "machine.json"
ETCD_DIR = "etcd"
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
API_PORT = 7787
_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")


@dataclasses.dataclass(frozen=True)
class MachineConfig:
    """This machine in its cluster."""

    cluster: str
    name: str  # the machine ID (fleet list-machines)
    address: str  # where the others reach it
    member: bool  # runs an etcd member (else an etcd client only)
    endpoints: tuple[str, ...]  # etcd client URLs, this machine's own member first
    initial_cluster: str = ""  # etcd --initial-cluster, for a member's first start
    initial_state: str = "new"  # new (cluster init) or existing (a joiner)
    api_port: int = API_PORT
    log_dir: str = ""  # '' = STATE_DIR/log
    carry_from: str = ""  # a single-machine SQLite store to carry into etcd first (init)

    def to_json(self) -> str:
        """The file's text."""
        return json.dumps({**dataclasses.asdict(self), "endpoints": list(self.endpoints)},
                          indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> MachineConfig:
        """Read the file's text."""
        data: dict[str, Any] = json.loads(text)
        names = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k in names}
        data["endpoints"] = tuple(data.get("endpoints", ()))
        return cls(**data)


def validate_name(name: str) -> str:
    """A machine name: lowercase letters, digits, '.' and '-' (it becomes a certificate name
    and an etcd member name)."""
    if not _NAME.fullmatch(name):
        raise ValidationError(f"invalid machine name {name!r}",
                              hint="use lowercase letters, digits, '.' and '-' (--name)")
    return name


def validate_address(address: str) -> str:
    """An IP address other machines reach this one at."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        raise ValidationError(f"invalid address {address!r}",
                              hint="give this machine's IP address on the cluster network "
                                   "(--address)") from None


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def client_url(address: str) -> str:
    """A member's etcd client URL."""
    return f"https://{_host(address)}:{ETCD_CLIENT_PORT}"


def peer_url(address: str) -> str:
    """A member's etcd peer URL."""
    return f"https://{_host(address)}:{ETCD_PEER_PORT}"


def path(state_dir: Path) -> Path:
    """``STATE_DIR/machine.json``."""
    return Path(state_dir) / MACHINE_FILE


def load(state_dir: Path) -> MachineConfig | None:
    """This machine's cluster configuration, or None when it is in no cluster."""
    try:
        return MachineConfig.from_json(path(state_dir).read_text())
    except FileNotFoundError:
        return None


def save(state_dir: Path, mc: MachineConfig) -> None:
    """Write the configuration (0600, atomically)."""
    target = path(state_dir)
    tmp = target.with_name(target.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(mc.to_json())
    os.replace(tmp, target)


def log_dir(state_dir: Path, mc: MachineConfig) -> Path:
    """Where etcd.log and daemon.log go."""
    return Path(mc.log_dir) if mc.log_dir else Path(state_dir) / "log"


def etcd_args(state_dir: Path, mc: MachineConfig) -> list[str]:
    """The etcd member's command line: client and peer TLS from the cluster CA, both sides
    requiring a certificate it signed. Timing (heartbeat, election) is left to ``ETCD_*``
    variables of the environment, where a site sets them for its network."""
    p = pki(state_dir)
    return [
        "etcd", "--name", mc.name, "--data-dir", str(Path(state_dir) / ETCD_DIR),
        "--listen-client-urls", f"https://0.0.0.0:{ETCD_CLIENT_PORT}",
        "--advertise-client-urls", client_url(mc.address),
        "--listen-peer-urls", f"https://0.0.0.0:{ETCD_PEER_PORT}",
        "--initial-advertise-peer-urls", peer_url(mc.address),
        "--initial-cluster", mc.initial_cluster or f"{mc.name}={peer_url(mc.address)}",
        "--initial-cluster-state", mc.initial_state,
        "--initial-cluster-token", f"shipmate-{mc.cluster}",
        "--cert-file", str(p.cert), "--key-file", str(p.key),
        "--trusted-ca-file", str(p.ca_cert), "--client-cert-auth",
        "--peer-cert-file", str(p.cert), "--peer-key-file", str(p.key),
        "--peer-trusted-ca-file", str(p.ca_cert), "--peer-client-cert-auth",
        # A member rejoining after a partition must not depose the leader with the higher
        # term it reached campaigning alone (etcd 3.4 has pre-vote off by default).
        "--pre-vote",
    ]


def daemon_env(state_dir: Path, mc: MachineConfig) -> dict[str, str]:
    """The daemon's settings that make it a machine of the cluster."""
    return {
        "SHIPMATE_STATE_DIR": str(state_dir),
        "SHIPMATE_STORE": "etcd",
        "SHIPMATE_ETCD_ENDPOINTS": ",".join(mc.endpoints),
        "SHIPMATE_CLUSTER_TLS_DIR": str(pki(state_dir).dir),
        "SHIPMATE_MACHINE_ID": mc.name,
        "SHIPMATE_PUBLIC_IP": mc.address,
        "SHIPMATE_API_PORT": str(mc.api_port),
    }
