"""The one container spec. Manifests, ``.container`` units and PaaS releases all produce it;
one converge engine applies it.

A spec is frozen and canonical: collections are sorted tuples, so two specs that mean the
same thing are equal and hash the same. :func:`spec_hash` goes into the ``shipmate.spec-hash``
label, which lets a restarted agent (or a second ``apply``) adopt what already runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from shipmate.errors import ValidationError
from shipmate.spec.names import validate_container_name

SPEC_HASH_LABEL = "shipmate.spec-hash"
MANAGED_LABEL = "shipmate.managed"
#: Networks whose names start with this belong to Shipmate (a service and the apps linked to
#: it): the engine creates one that is missing when a container names it.
OWNED_NETWORK_PREFIX = "shipmate-svc-"
#: Fields added after containers were first labelled with their hash, with their defaults:
#: left out of a spec's JSON (and so its hash) while at the default, so that an upgrade does
#: not see every existing container as changed (and replace it).
LATER_FIELDS: Mapping[str, Any] = {"networks": (), "memory": None, "memory_reservation": None,
                                   "cpus": None, "init": False}
RestartPolicy = Literal["no", "always", "unless-stopped", "on-failure"]


@dataclasses.dataclass(frozen=True, order=True)
class PortMapping:
    """``host_ip:host_port -> container_port/protocol``. host_port 0: engine picks one."""

    container_port: int
    host_port: int = 0
    host_ip: str = ""
    protocol: Literal["tcp", "udp"] = "tcp"

    def __post_init__(self) -> None:
        for p in (self.container_port, self.host_port):
            if not 0 <= p <= 65535:
                raise ValidationError(f"port {p} out of range 0-65535")
        if self.container_port == 0:
            raise ValidationError("container port must be 1-65535")


@dataclasses.dataclass(frozen=True, order=True)
class Mount:
    """A bind mount (source is an absolute host path) or a named volume (source is a name)."""

    target: str
    source: str
    read_only: bool = False

    def __post_init__(self) -> None:
        if not self.target.startswith("/"):
            raise ValidationError(f"volume target {self.target!r} must be an absolute path")


@dataclasses.dataclass(frozen=True)
class HealthCheck:
    """Docker-style health check run inside the container."""

    test: tuple[str, ...]
    interval: float = 2.0
    timeout: float = 2.0
    retries: int = 3
    start_period: float = 0.0


@dataclasses.dataclass(frozen=True)
class ContainerSpec:
    """Everything that defines a container. Build with :func:`make_spec` for canonical form."""

    name: str
    image: str
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    env: tuple[tuple[str, str], ...] = ()
    ports: tuple[PortMapping, ...] = ()
    mounts: tuple[Mount, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    restart: RestartPolicy = "no"
    health: HealthCheck | None = None
    network: str | None = None
    #: More networks the container joins after it is created (Docker connects a container
    #: to one network at creation); names Docker's embedded DNS resolves on each.
    networks: tuple[str, ...] = ()
    hostname: str | None = None
    working_dir: str | None = None
    user: str | None = None
    #: Resource limits (``docker run --memory``, ``--memory-reservation``, ``--cpus``);
    #: None: unlimited. Left out of :meth:`to_json` when None, so specs made before these
    #: fields existed keep their hash (and running containers are not replaced).
    memory: int | None = None
    memory_reservation: int | None = None
    cpus: float | None = None
    #: Run an init as PID 1 (Docker's ``--init``, tini): it forwards signals to the process
    #: and reaps zombies, so a process that never expected to be PID 1 still stops on
    #: SIGTERM at once instead of being killed after the stop timeout.
    init: bool = False

    def __post_init__(self) -> None:
        validate_container_name(self.name)
        if not self.image:
            raise ValidationError(f"container {self.name}: image is required")
        for field in ("memory", "memory_reservation", "cpus"):
            value = getattr(self, field)
            if value is not None and (isinstance(value, bool) or value <= 0):
                raise ValidationError(f"container {self.name}: {field} must be positive")

    @property
    def env_dict(self) -> dict[str, str]:
        """Environment as a dict."""
        return dict(self.env)

    @property
    def labels_dict(self) -> dict[str, str]:
        """Labels as a dict (without Shipmate's own bookkeeping labels)."""
        return dict(self.labels)

    @property
    def owned_networks(self) -> tuple[str, ...]:
        """The networks it names that Shipmate makes when missing (see
        :data:`OWNED_NETWORK_PREFIX`)."""
        names = (self.network, *self.networks)
        return tuple(n for n in names if n and n.startswith(OWNED_NETWORK_PREFIX))

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict; :func:`spec_from_json` reverses it. :data:`LATER_FIELDS` are left
        out while at their defaults."""
        data = dataclasses.asdict(self)
        for key, default in LATER_FIELDS.items():
            if data[key] == default:
                del data[key]
        return data


def make_spec(
    name: str,
    image: str,
    *,
    command: Iterable[str] | None = None,
    entrypoint: Iterable[str] | None = None,
    env: Mapping[str, str] | None = None,
    ports: Iterable[PortMapping] = (),
    mounts: Iterable[Mount] = (),
    labels: Mapping[str, str] | None = None,
    networks: Iterable[str] = (),
    **rest: Any,
) -> ContainerSpec:
    """Build a canonical spec (sorted env, ports, mounts, labels, extra networks)."""
    for key in (env or {}):
        if not key or "=" in key or "\0" in key:
            raise ValidationError(f"container {name}: invalid environment variable name {key!r}")
    return ContainerSpec(
        name=name,
        image=image,
        command=tuple(command) if command is not None else None,
        entrypoint=tuple(entrypoint) if entrypoint is not None else None,
        env=tuple(sorted((env or {}).items())),
        ports=tuple(sorted(ports)),
        mounts=tuple(sorted(mounts)),
        labels=tuple(sorted((labels or {}).items())),
        networks=tuple(sorted(set(networks))),
        **rest,
    )


def spec_from_json(data: Mapping[str, Any]) -> ContainerSpec:
    """Rebuild a spec from :meth:`ContainerSpec.to_json` output."""
    d = dict(data)
    health = d.pop("health", None)
    return make_spec(
        d.pop("name"),
        d.pop("image"),
        command=d.pop("command", None),
        entrypoint=d.pop("entrypoint", None),
        env=dict(d.pop("env", ())),
        ports=[PortMapping(**p) for p in d.pop("ports", ())],
        mounts=[Mount(**m) for m in d.pop("mounts", ())],
        labels=dict(d.pop("labels", ())),
        networks=d.pop("networks", ()),
        health=HealthCheck(**{**health, "test": tuple(health["test"])}) if health else None,
        **d,
    )


def spec_hash(spec: ContainerSpec) -> str:
    """SHA-256 of the canonical JSON form (first 16 hex digits are enough to label with)."""
    data = spec.to_json()
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
