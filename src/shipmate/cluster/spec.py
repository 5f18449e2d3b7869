"""What a local cluster is made of (pure: no I/O).

A cluster is N Docker-in-Docker containers ("nodes", each one machine) on a dedicated Docker
network with a fixed subnet. Node ``node-N`` has the address ``.10+N`` of that subnet. ``cluster
up`` runs ``shipmate cluster init`` in node-1 and ``cluster join`` in the others, in order, so
the first three (or five: ``--etcd-members``) become etcd members and the rest etcd clients.
Every name and address other modules use comes from here, so the CLI, the tests and
``--cluster`` agree on them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from shipmate.errors import ValidationError

DEFAULT_NAME = "shipmate"
DEFAULT_SUBNET = "172.30.0.0/24"
MAX_NODES = 50
ETCD_MEMBERS = 3
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
ETCD_HEARTBEAT_MS = 50
ETCD_ELECTION_MS = 500
# Machine and scheduler leases in the nodes: a dead machine's units move once its lease is
# gone, so this is most of the failover time (issue 7's target is 5 s).
NODE_AGENT_TTL = 2
# The daemons' TCP image route (app images go from the machine that built them to the
# machines their units land on: there is no registry).
API_PORT = 7787
IMAGE_REPOSITORY = "shipmate/node-machine"
BASE_IMAGE = "shipmate/base:bookworm"
# Images loaded into every node when the host has them (save/load: there is no registry).
# The service images too: `postgres:create` in a node finds its image up to date instead of
# building it there (once loaded, a node's Docker volume keeps them across `down`/`up`).
DEFAULT_NODE_IMAGES = ("shipmate/base:bookworm", "shipmate/python:3.11", "shipmate/node:18",
                       "shipmate/postgres:15", "shipmate/redis:7")

LABEL_CLUSTER = "io.shipmate.cluster"
LABEL_NODE = "io.shipmate.cluster.node"
LABEL_ADDRESS = "io.shipmate.cluster.address"
LABEL_ETCD = "io.shipmate.cluster.etcd"
LABEL_IMAGE = "io.shipmate.cluster.image"

# Inside a node: where the daemon's socket and the logs live (bind-mounted from the host, so
# `shipmate --cluster node-1 ...` on the host talks to that node's daemon through its socket).
NODE_RUN_DIR = "/run/shipmate"
NODE_SOCKET = NODE_RUN_DIR + "/shipmate.sock"
NODE_STATE_DIR = "/var/lib/shipmate"
NODE_PKI = NODE_STATE_DIR + "/pki"  # shipmate.cluster.ca.PKI_DIR under the state dir
# Docker's documented recipe for Docker-in-Docker here; --privileged is refused on this host.
DIND_FLAGS = (
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--security-opt", "systempaths=unconfined",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--cgroupns", "host",
)

_CLUSTER_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_NODE_NAME = re.compile(r"^node-([1-9][0-9]?)$")


@dataclasses.dataclass(frozen=True)
class Node:
    """One machine of the cluster."""

    cluster: str
    index: int  # 1-based
    address: str
    etcd: bool  # runs an etcd member

    @property
    def name(self) -> str:
        """``node-N``: the machine ID its daemon uses too."""
        return f"node-{self.index}"

    @property
    def container(self) -> str:
        """The Docker container's name, ``CLUSTER-node-N``."""
        return f"{self.cluster}-{self.name}"

    @property
    def volume(self) -> str:
        """The volume holding the node's /var/lib/docker (kept across `down`/`up`, so the
        images loaded into it are loaded once)."""
        return f"{self.cluster}-{self.name}-docker"

    @property
    def etcd_client_url(self) -> str:
        """Where this node's etcd member answers clients (TLS, client certificate)."""
        return f"https://{self.address}:{ETCD_CLIENT_PORT}"


@dataclasses.dataclass(frozen=True)
class Cluster:
    """A cluster's shape: name, subnet and nodes."""

    name: str
    subnet: str
    nodes: tuple[Node, ...]
    etcd_members: int = ETCD_MEMBERS  # the etcd cluster grows to this many members

    @property
    def network(self) -> str:
        """The dedicated Docker network."""
        return f"{self.name}-cluster"

    @property
    def gateway(self) -> str:
        """The host's address on the cluster network."""
        return str(next(ipaddress.ip_network(self.subnet).hosts()))

    @property
    def etcd_nodes(self) -> tuple[Node, ...]:
        """The nodes that run an etcd member."""
        return tuple(n for n in self.nodes if n.etcd)

    def node(self, name: str) -> Node:
        """The node called ``name`` (``node-2``), or a ValidationError listing the others."""
        validate_node_name(name)
        for n in self.nodes:
            if n.name == name:
                return n
        raise ValidationError(f"cluster {self.name!r} has no node {name!r}",
                              hint="nodes: " + ", ".join(n.name for n in self.nodes))


def validate_cluster_name(name: str) -> str:
    """Return ``name`` if it is a valid cluster name (it prefixes container names)."""
    if not _CLUSTER_NAME.fullmatch(name):
        raise ValidationError(f"invalid cluster name {name!r}",
                              hint="use lowercase letters, digits and '-', starting with a letter")
    return name


def validate_node_name(name: str) -> str:
    """Return ``name`` if it looks like ``node-N``."""
    if not _NODE_NAME.fullmatch(name):
        raise ValidationError(f"invalid node name {name!r}",
                              hint="nodes are called node-1, node-2, ...")
    return name


def node_address(subnet: str, index: int) -> str:
    """Node ``index``'s address: host ``10 + index`` of ``subnet``."""
    net = ipaddress.ip_network(subnet)
    return str(net.network_address + 10 + index)


def plan(name: str = DEFAULT_NAME, nodes: int = 3, subnet: str = DEFAULT_SUBNET,
         etcd_members: int = ETCD_MEMBERS) -> Cluster:
    """The cluster ``name`` with ``nodes`` machines on ``subnet`` (validated). The first
    ``etcd_members`` nodes join as etcd members (they join in order), the others as clients."""
    if etcd_members not in (3, 5):
        raise ValidationError(f"an etcd cluster of {etcd_members} members is not offered",
                              hint="use --etcd-members 3 or 5")
    validate_cluster_name(name)
    if not 1 <= nodes <= MAX_NODES:
        raise ValidationError(f"a cluster has 1 to {MAX_NODES} nodes, not {nodes}")
    try:
        net = ipaddress.ip_network(subnet)
    except ValueError as exc:
        raise ValidationError(f"invalid subnet {subnet!r}: {exc}",
                              hint=f"e.g. {DEFAULT_SUBNET}") from None
    if net.version != 4 or net.num_addresses < 10 + nodes + 2:
        raise ValidationError(f"subnet {subnet} is too small for {nodes} nodes",
                              hint="use an IPv4 /24, e.g. " + DEFAULT_SUBNET)
    members = min(etcd_members, nodes)
    return Cluster(name, str(net), tuple(
        Node(name, i, node_address(str(net), i), i <= members) for i in range(1, nodes + 1)),
        etcd_members)


def etcd_env() -> dict[str, str]:
    """etcd's timing for the nodes, as ``ETCD_*`` variables (the supervisor passes them to the
    member; its command line, from ``cluster init``/``join``, sets everything else), and
    etcdctl's certificate settings, so ``docker exec NODE etcdctl ...`` just works."""
    return {
        # A dead leader is replaced within ~0.5-1 s instead of 1-2 s (etcd's defaults are
        # 100/1000 ms, sized for WANs; the members share one host's bridge here). Failover
        # waits for it twice: before the dead machine's lease can expire at all, and again
        # because a new leader extends every lease by the election timeout.
        "ETCD_HEARTBEAT_INTERVAL": str(ETCD_HEARTBEAT_MS),
        "ETCD_ELECTION_TIMEOUT": str(ETCD_ELECTION_MS),
        "ETCDCTL_CACERT": NODE_PKI + "/ca.crt",
        "ETCDCTL_CERT": NODE_PKI + "/machine.crt",
        "ETCDCTL_KEY": NODE_PKI + "/machine.key",
    }


def daemon_env(cluster: Cluster, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The Shipmate daemon's settings every node shares: its state dir and socket, router
    and SSH on, the package cache off (the host's serves builds), short leases; ``extra``
    wins. The store, the machine's name and address come from ``cluster init``/``join``
    (STATE_DIR/machine.json)."""
    env = {
        "SHIPMATE_AGENT_TTL": str(NODE_AGENT_TTL),
        "SHIPMATE_STATE_DIR": NODE_STATE_DIR,
        "SHIPMATE_SOCKET": NODE_SOCKET,
        "SHIPMATE_ROUTER": "1",
        "SHIPMATE_CACHE": "0",
        "SHIPMATE_SSH": "1",
        # One etcd attempt gets half of this: a request stuck on a member that just died
        # must move to another well within the agent's lease TTL (2 s).
        "SHIPMATE_ETCD_TIMEOUT": "2",
        "SHIPMATE_API_CLIENTS": cluster.subnet,
        "SHIPMATE_CLUSTER_ETCD_MEMBERS": str(cluster.etcd_members),
    }
    env.update(extra or {})
    return env


def init_args(cluster: Cluster, node: Node) -> list[str]:
    """``shipmate cluster init`` on the first node (after ``docker exec NODE``)."""
    return ["shipmate", "--format", "json", "cluster", "init", "--name", node.name,
            "--address", node.address, "--cluster-name", cluster.name, "--api-port",
            str(API_PORT), "--log-dir", NODE_RUN_DIR]


def join_args(signer: Node, node: Node, token: str) -> list[str]:
    """``shipmate cluster join`` on another node."""
    return ["shipmate", "--format", "json", "cluster", "join", signer.address, token,
            "--name", node.name, "--address", node.address, "--api-port", str(API_PORT),
            "--log-dir", NODE_RUN_DIR]


def parse_env(pairs: Iterable[str]) -> dict[str, str]:
    """``K=V`` strings (``cluster up --env``) as a dict; only ``SHIPMATE_*`` names."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(r"SHIPMATE_[A-Z0-9_]+", key):
            raise ValidationError(f"invalid --env {pair!r}",
                                  hint="give SHIPMATE_NAME=value, e.g. SHIPMATE_AGENT_TTL=2")
        out[key] = value
    return out


def labels(node: Node, image: str) -> dict[str, str]:
    """The labels a node container carries (status finds the nodes by them)."""
    return {LABEL_CLUSTER: node.cluster, LABEL_NODE: node.name, LABEL_ADDRESS: node.address,
            LABEL_ETCD: "1" if node.etcd else "0", LABEL_IMAGE: image}


def run_args(cluster: Cluster, node: Node, image: str, host_run_dir: Path,
             extra_env: Mapping[str, str] | None = None) -> list[str]:
    """``docker run`` arguments (after ``run``) that start ``node`` from ``image``."""
    args = ["-d", "--name", node.container, "--hostname", node.name, "--init",
            "--network", cluster.network, "--ip", node.address, *DIND_FLAGS,
            "-v", f"{node.volume}:/var/lib/docker", "-v", f"{host_run_dir}:{NODE_RUN_DIR}"]
    for key, value in sorted(labels(node, image).items()):
        args += ["--label", f"{key}={value}"]
    env = {**etcd_env(), **daemon_env(cluster, extra_env)}
    for key, value in sorted(env.items()):
        args += ["-e", f"{key}={value}"]
    return [*args, image]


def image_ref(inputs_hash: str) -> str:
    """``shipmate/node-machine:<first 12 hex of the inputs hash>``."""
    return f"{IMAGE_REPOSITORY}:{inputs_hash[:12]}"


def inputs_hash(parts: Mapping[str, bytes]) -> str:
    """SHA-256 over named inputs (Dockerfile, entrypoint, base image ID, source files), in
    name order, so the same inputs give the same node image tag."""
    digest = hashlib.sha256()
    for name in sorted(parts):
        data = parts[name]
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def runtime_requirements(lock_text: str) -> str:
    """The runtime part of requirements.lock: everything before the ``# dev`` marker."""
    lines = []
    for line in lock_text.splitlines():
        if line.strip().lower() == "# dev":
            break
        lines.append(line)
    return "\n".join(lines) + "\n"


NODE_PACKAGES = (
    "docker.io", "nginx", "etcd-server", "etcd-client", "git", "python3", "python3-venv",
    "iproute2", "iptables", "ca-certificates", "procps", "openssh-client", "curl",
)


def dockerfile_text() -> str:
    """The node image: Debian's dockerd, nginx, etcd and git on the local base image, and
    Shipmate in a venv at /opt/shipmate. Its dependencies come from a wheelhouse the host's
    pip filled (so the build needs no PyPI access of its own); its source tree is on the
    venv's path, so every file of it, package data included, is there."""
    return f"""\
# shipmate/node-machine: one machine of a local cluster (see docs/cluster.md).
ARG BASE={BASE_IMAGE}
FROM ${{BASE}}
ARG DEBIAN_FRONTEND=noninteractive
ARG APT_PROXY=
RUN set -eux; \\
    if [ -n "$APT_PROXY" ]; then \\
        echo "Acquire::http::Proxy \\"$APT_PROXY\\";" > /etc/apt/apt.conf.d/01shipmate-proxy; \\
    fi; \\
    apt-get update; \\
    apt-get install -y --no-install-recommends {" ".join(NODE_PACKAGES)}; \\
    rm -f /etc/apt/apt.conf.d/01shipmate-proxy; \\
    apt-get clean; rm -rf /var/lib/apt/lists/*
# Dependencies first: a change to Shipmate's code alone reuses this layer.
COPY requirements.txt /opt/shipmate/requirements.txt
COPY wheels /opt/shipmate/wheels
RUN set -eux; \\
    python3 -m venv /opt/shipmate/venv; \\
    /opt/shipmate/venv/bin/pip install --no-index --find-links /opt/shipmate/wheels \\
        --no-cache-dir --disable-pip-version-check -r /opt/shipmate/requirements.txt; \\
    rm -rf /opt/shipmate/wheels
COPY node-init.sh /usr/local/bin/shipmate-node-init
COPY shipmate.sh /usr/local/bin/shipmate
COPY src /opt/shipmate/src
RUN set -eux; \\
    chmod 755 /usr/local/bin/shipmate-node-init /usr/local/bin/shipmate; \\
    site=$(/opt/shipmate/venv/bin/python -c 'import site; print(site.getsitepackages()[0])'); \\
    echo /opt/shipmate/src/src > "$site/shipmate-src.pth"; \\
    shipmate --version
ENTRYPOINT ["/usr/local/bin/shipmate-node-init"]
"""


def launcher_text() -> str:
    """``/usr/local/bin/shipmate`` in the node image."""
    return "#!/bin/sh\nexec /opt/shipmate/venv/bin/python -m shipmate.cli.main \"$@\"\n"


def host_pki_dir(state_dir: Path, cluster: str) -> Path:
    """The host's client certificate for the cluster's etcd (``cluster status``, benches):
    ``ca.crt``, ``client.crt``, ``client.key``, signed by node-1's CA at ``cluster up``."""
    return Path(state_dir) / "cluster" / cluster / "pki"


def host_dir(state_dir: Path, cluster: str, node: str) -> Path:
    """The host directory bind-mounted at /run/shipmate in ``node``: its daemon's socket and
    the node's logs (dockerd.log, etcd.log, daemon.log, node.log)."""
    return Path(state_dir) / "cluster" / cluster / node


def parse_target(target: str) -> tuple[str, str]:
    """``node-2`` or ``CLUSTER/node-2`` (``--cluster``, ``SHIPMATE_CLUSTER``) as
    (cluster, node)."""
    cluster, sep, node = target.rpartition("/")
    return validate_cluster_name(cluster if sep else DEFAULT_NAME), validate_node_name(node)


def from_labels(name: str, subnet: str, nodes: Iterable[Mapping[str, str]]) -> Cluster:
    """The cluster as its containers' labels describe it (``cluster status`` and fault
    injection work on what runs, whatever ``--nodes`` it was started with)."""
    found = []
    for lab in nodes:
        match = _NODE_NAME.fullmatch(lab.get(LABEL_NODE, ""))
        if lab.get(LABEL_CLUSTER) == name and match:
            found.append(Node(name, int(match.group(1)), lab.get(LABEL_ADDRESS, ""),
                              lab.get(LABEL_ETCD) == "1"))
    return Cluster(name, subnet, tuple(sorted(found, key=lambda n: n.index)))
