"""Pure translation between Shipmate's data types and the Docker API's JSON shapes.

``ContainerSpec`` -> arguments of docker-py's ``create_container`` / ``create_host_config``,
and ``docker inspect`` output -> :class:`ContainerInfo`. No I/O here, and no docker import:
the adapter in :mod:`shipmate.engine.docker` feeds these to docker-py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from shipmate.engine.base import ContainerInfo, EngineEvent, ImageInfo
from shipmate.errors import ValidationError
from shipmate.spec.container import (
    MANAGED_LABEL,
    SPEC_HASH_LABEL,
    ContainerSpec,
    HealthCheck,
    Mount,
    PortMapping,
    spec_hash,
)

_NS = 1_000_000_000
_HEALTH_KINDS = ("CMD", "CMD-SHELL", "NONE")


@dataclasses.dataclass(frozen=True)
class CreateArgs:
    """What the adapter passes to docker-py: ``create_container(**create,
    host_config=create_host_config(**host_config))``."""

    create: dict[str, Any]
    host_config: dict[str, Any]


def container_labels(spec: ContainerSpec, extra: Mapping[str, str]) -> dict[str, str]:
    """The spec's labels plus Shipmate's bookkeeping (spec hash, managed) and ``extra``."""
    return {**spec.labels_dict, SPEC_HASH_LABEL: spec_hash(spec), MANAGED_LABEL: "1", **extra}


def health_test(test: tuple[str, ...]) -> list[str]:
    """Docker's ``Test`` list. ``("CMD", ...)``/``("CMD-SHELL", "...")`` pass through; a single
    string is a shell command; several strings are an exec command."""
    if not test:
        return ["NONE"]
    if test[0] in _HEALTH_KINDS:
        return list(test)
    if len(test) == 1:
        return ["CMD-SHELL", test[0]]
    return ["CMD", *test]


def healthcheck(health: HealthCheck) -> dict[str, Any]:
    """Docker's ``Healthcheck`` object (durations in nanoseconds)."""
    return {
        "Test": health_test(health.test),
        "Interval": int(health.interval * _NS),
        "Timeout": int(health.timeout * _NS),
        "Retries": health.retries,
        "StartPeriod": int(health.start_period * _NS),
    }


def port_bindings(ports: tuple[PortMapping, ...]) -> dict[str, list[dict[str, str]]]:
    """``{"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}``; port 0: engine picks."""
    out: dict[str, list[dict[str, str]]] = {}
    for p in ports:
        host_port = str(p.host_port) if p.host_port else ""
        out.setdefault(f"{p.container_port}/{p.protocol}", []).append(
            {"HostIp": p.host_ip, "HostPort": host_port}
        )
    return out


def bind(mount: Mount) -> str:
    """``-v`` syntax: a source starting with ``/`` is a bind mount, anything else a named
    volume (created on first use, as ``docker run -v`` does)."""
    for part in (mount.source, mount.target):
        if ":" in part or "\0" in part or not part:
            raise ValidationError(f"mount {mount.source!r} -> {mount.target!r}: invalid path",
                                  hint="mount sources and targets may not be empty or contain ':'")
    return f"{mount.source}:{mount.target}:{'ro' if mount.read_only else 'rw'}"


def restart_policy(spec: ContainerSpec) -> dict[str, Any]:
    """Docker's ``RestartPolicy``."""
    if spec.restart == "on-failure":
        return {"Name": "on-failure", "MaximumRetryCount": 0}
    return {"Name": spec.restart}


def create_args(spec: ContainerSpec, extra_labels: Mapping[str, str] | None = None) -> CreateArgs:
    """Every field of ``spec`` mapped onto the Docker create call."""
    create: dict[str, Any] = {
        "image": spec.image,
        "name": spec.name,
        "command": list(spec.command) if spec.command is not None else None,
        "entrypoint": list(spec.entrypoint) if spec.entrypoint is not None else None,
        "environment": [f"{k}={v}" for k, v in spec.env],
        "labels": container_labels(spec, extra_labels or {}),
        "ports": sorted({(p.container_port, p.protocol) for p in spec.ports}),
        "hostname": spec.hostname,
        "working_dir": spec.working_dir,
        "user": spec.user,
        "healthcheck": healthcheck(spec.health) if spec.health else None,
        "detach": True,
    }
    host: dict[str, Any] = {
        "port_bindings": port_bindings(spec.ports),
        "binds": [bind(m) for m in spec.mounts],
        "restart_policy": restart_policy(spec),
    }
    if spec.network:
        host["network_mode"] = spec.network
    host.update(resource_limits(spec))
    if spec.init:
        host["init"] = True  # dockerd's docker-init (tini) as PID 1
    return CreateArgs(create=create, host_config=host)


def resource_limits(spec: ContainerSpec) -> dict[str, int]:
    """The spec's resource limits as docker-py's ``create_host_config`` arguments."""
    out: dict[str, int] = {}
    if spec.memory is not None:
        out["mem_limit"] = spec.memory
    if spec.memory_reservation is not None:
        out["mem_reservation"] = spec.memory_reservation
    if spec.cpus is not None:
        out["nano_cpus"] = round(spec.cpus * _NS)
    return out


def actual_ports(raw_ports: Mapping[str, Any] | None) -> tuple[PortMapping, ...]:
    """Digest ``NetworkSettings.Ports``. The engine binds 0.0.0.0 and :: for one mapping;
    the ``::`` twin of a 0.0.0.0 binding is dropped so each mapping appears once."""
    found: set[PortMapping] = set()
    for key, bindings in (raw_ports or {}).items():
        port, _, proto = key.partition("/")
        for b in bindings or ():
            if not b.get("HostPort"):
                continue
            found.add(PortMapping(int(port), int(b["HostPort"]), b.get("HostIp", ""),
                                  "udp" if proto == "udp" else "tcp"))
    wildcard = {(p.container_port, p.host_port, p.protocol)
                for p in found if p.host_ip == "0.0.0.0"}
    return tuple(sorted(p for p in found if not (
        p.host_ip == "::" and (p.container_port, p.host_port, p.protocol) in wildcard)))


def env_dict(env: list[str] | None) -> dict[str, str]:
    """``["K=V", ...]`` -> ``{"K": "V"}``."""
    out: dict[str, str] = {}
    for item in env or ():
        key, _, value = item.partition("=")
        out[key] = value
    return out


def container_info(raw: Mapping[str, Any]) -> ContainerInfo:
    """``docker inspect`` output -> :class:`ContainerInfo`."""
    state = raw.get("State") or {}
    config = raw.get("Config") or {}
    net = raw.get("NetworkSettings") or {}
    ip = net.get("IPAddress") or next(
        (n.get("IPAddress") for n in (net.get("Networks") or {}).values() if n.get("IPAddress")),
        "",
    )
    health = state.get("Health")
    return ContainerInfo(
        id=raw["Id"],
        name=str(raw.get("Name", "")).lstrip("/"),
        image=config.get("Image", ""),
        image_id=raw.get("Image", ""),
        state=state.get("Status", ""),
        labels=dict(config.get("Labels") or {}),
        env=env_dict(config.get("Env")),
        ports=actual_ports(net.get("Ports")),
        health=health.get("Status") if health else None,
        pid=int(state.get("Pid") or 0),
        exit_code=int(state.get("ExitCode") or 0),
        ip_address=ip or "",
        started_at=state.get("StartedAt", ""),
        raw=raw,
    )


def image_info(raw: Mapping[str, Any]) -> ImageInfo:
    """``docker image inspect`` output -> :class:`ImageInfo`."""
    config = raw.get("Config") or {}
    return ImageInfo(id=raw["Id"], tags=tuple(raw.get("RepoTags") or ()),
                     labels=dict(config.get("Labels") or {}), size=int(raw.get("Size") or 0))


def engine_event(raw: Mapping[str, Any]) -> EngineEvent:
    """One decoded ``/events`` message -> :class:`EngineEvent`."""
    actor = raw.get("Actor") or {}
    nano = raw.get("timeNano")
    return EngineEvent(
        type=raw.get("Type", ""),
        action=raw.get("Action", ""),
        id=actor.get("ID", raw.get("id", "")),
        attributes=dict(actor.get("Attributes") or {}),
        time=nano / _NS if nano else float(raw.get("time", 0)),
    )


def loaded_images(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """Names from ``docker load`` progress (``Loaded image: x:y`` / ``Loaded image ID: sha``)."""
    out = []
    for m in messages:
        text = str(m.get("stream", "")).strip()
        for prefix in ("Loaded image ID: ", "Loaded image: "):
            if text.startswith(prefix):
                out.append(text[len(prefix):])
                break
    return out
