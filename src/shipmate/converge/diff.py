"""Field-level diff of a desired spec against a container as the engine reports it. Pure.

Two sources of truth are compared, so the diff is exact without spurious changes:

- the **applied view** Shipmate wrote into the container's ``shipmate.spec`` label when it
  created it (the canonical spec, env values hashed). Desired vs applied notices every change,
  including removals (an env var or a port dropped from the manifest), and it never sees image
  or engine defaults (image ``Config.Env``, image labels, engine-added hostname...).
- the **actual** container: image ID (a moved tag), running state, restart policy (the only
  field changed in place, by ``docker update``), and the declared env, labels, command, mounts
  and ports, checked only where declared, so drift made behind Shipmate's back shows too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from shipmate.engine.base import ContainerInfo
from shipmate.spec.container import (
    LATER_FIELDS,
    SPEC_HASH_LABEL,
    ContainerSpec,
    PortMapping,
    spec_hash,
)

APPLIED_LABEL = "shipmate.spec"
IMAGE_ID_LABEL = "shipmate.image-id"
CONTAINER_LABEL = "shipmate.container"
IN_PLACE = frozenset({"restart", "state"})  # all else forces a new container
_FIELDS = ("image", "command", "entrypoint", "ports", "mounts", "labels", "health", "network",
           "networks", "hostname", "working_dir", "user", "restart", "memory",
           "memory_reservation", "cpus", "init")
# Resource fields as ``docker inspect`` reports them under HostConfig, with the scale to them.
_RESOURCES = (("memory", "Memory", 1), ("memory_reservation", "MemoryReservation", 1),
              ("cpus", "NanoCpus", 1_000_000_000))
_WILDCARD = ("", "0.0.0.0", "::")  # how the engine reports "all addresses"


@dataclasses.dataclass(frozen=True)
class FieldChange:
    """One differing field, with display values (secrets already hashed)."""

    field: str  # "env.NAME", "ports", "image", "restart", "state", ...
    old: str | None  # None: absent
    new: str | None

    @property
    def replace(self) -> bool:
        """True when this change needs a new container (Docker cannot change it in place)."""
        return self.field not in IN_PLACE

    def to_json(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"field": self.field, "old": self.old, "new": self.new, "replace": self.replace}


def value_hash(value: str) -> str:
    """How a secret (and every env value in the applied-view label) is shown."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:12]


def applied_view(spec: ContainerSpec) -> dict[str, Any]:
    """The spec as recorded in the ``shipmate.spec`` label: env values hashed, so the label
    leaks no secret and stays small."""
    view = spec.to_json()
    view["env"] = [[k, value_hash(v)] for k, v in spec.env]
    return view


def applied_label(spec: ContainerSpec) -> str:
    """The label value: compact canonical JSON of :func:`applied_view`."""
    return json.dumps(applied_view(spec), sort_keys=True, separators=(",", ":"))


def read_applied(info: ContainerInfo) -> dict[str, Any] | None:
    """The applied view recorded on ``info``, or None (not created by a manifest apply)."""
    text = info.labels.get(APPLIED_LABEL)
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def diff(
    desired: ContainerSpec,
    info: ContainerInfo,
    *,
    image_id: str | None,
    is_secret: Callable[[str], bool] = lambda _k: False,
) -> tuple[FieldChange, ...]:
    """What differs between ``desired`` and the container ``info``. ``image_id`` is what the
    desired image reference resolves to now (None: unknown yet, e.g. about to be rebuilt)."""
    show = _shower(is_secret)
    changes: dict[str, FieldChange] = {}
    applied = read_applied(info)
    if applied is not None:
        if info.labels.get(SPEC_HASH_LABEL) != spec_hash(desired):
            for c in _applied_changes(desired, applied, info, show):
                changes.setdefault(c.field, c)
    elif info.labels.get(SPEC_HASH_LABEL) != spec_hash(desired):
        # Created by something that recorded only the hash: we know it differs, not how.
        changes["spec"] = FieldChange("spec", info.labels.get(SPEC_HASH_LABEL, "")[:12] or None,
                                      spec_hash(desired)[:12])
    for c in _actual_changes(desired, info, image_id, show):
        changes.setdefault(c.field, c)
    return tuple(changes[k] for k in sorted(changes))


def _shower(is_secret: Callable[[str], bool]) -> Callable[[str, str | None], str | None]:
    def show(key: str, value: str | None) -> str | None:
        if value is None or not is_secret(key) or value.startswith("sha256:"):
            return value
        return value_hash(value)

    return show


def _applied_changes(
    desired: ContainerSpec, applied: Mapping[str, Any], info: ContainerInfo,
    show: Callable[[str, str | None], str | None],
) -> Iterable[FieldChange]:
    want = applied_view(desired)
    for name in _FIELDS:
        if name == "restart" and _restart_of(info) is not None:
            continue  # the engine's own value is checked in _actual_changes
        # A label written before a field existed lacks it: it had the field's default.
        had = applied.get(name, LATER_FIELDS.get(name))
        wants = want.get(name, LATER_FIELDS.get(name))  # left out of the view at its default
        if _norm(wants) != _norm(had):
            yield FieldChange(name, _shown(name, had), _shown(name, wants))
    old_env = {str(k): str(v) for k, v in applied.get("env") or ()}
    new_env = dict(desired.env)
    for key in sorted(old_env.keys() | new_env.keys()):
        if key not in new_env:
            yield FieldChange(f"env.{key}", show(key, info.env.get(key, old_env[key])), None)
        elif key not in old_env:
            yield FieldChange(f"env.{key}", None, show(key, new_env[key]))
        elif old_env[key] != value_hash(new_env[key]):
            yield FieldChange(f"env.{key}", show(key, info.env.get(key, old_env[key])),
                              show(key, new_env[key]))


def _actual_changes(
    desired: ContainerSpec, info: ContainerInfo, image_id: str | None,
    show: Callable[[str, str | None], str | None],
) -> Iterable[FieldChange]:
    current_image = info.image_id or info.labels.get(IMAGE_ID_LABEL, "")
    if image_id and current_image and image_id != current_image:
        yield FieldChange("image", f"{desired.image} ({_short(current_image)})",
                          f"{desired.image} ({_short(image_id)}, tag moved)")
    for key, value in desired.env:
        if info.env.get(key) != value:
            yield FieldChange(f"env.{key}", show(key, info.env.get(key)), show(key, value))
    for key, value in desired.labels:
        if info.labels.get(key) != value:
            yield FieldChange("labels", _text(info.labels.get(key)), _text({key: value}))
    restart = _restart_of(info)
    if restart is not None and restart != desired.restart:
        yield FieldChange("restart", restart, desired.restart)
    yield from _raw_changes(desired, info)
    if info.running and not _ports_bound(desired.ports, info.ports):
        yield FieldChange("ports", _ports_text(info.ports), _ports_text(desired.ports))
    if not info.running:
        yield FieldChange("state", info.state or "unknown", "running")


def _raw_changes(desired: ContainerSpec, info: ContainerInfo) -> Iterable[FieldChange]:
    """Declared command, entrypoint and mounts against ``docker inspect`` (when the engine
    gave it); undeclared ones are the image's defaults and are not compared."""
    config = info.raw.get("Config") or {}
    host = info.raw.get("HostConfig") or {}
    for name, key, want in (("command", "Cmd", desired.command),
                            ("entrypoint", "Entrypoint", desired.entrypoint)):
        if want is not None and key in config and list(config[key] or []) != list(want):
            yield FieldChange(name, _text(config[key]), _text(list(want)))
    for name, key, scale in _RESOURCES:
        want_value = getattr(desired, name)
        if want_value is not None and key in host and host[key] != round(want_value * scale):
            have_value = (host[key] / scale if scale != 1 else host[key]) or None
            yield FieldChange(name, _text(have_value), _text(want_value))
    if "Init" in host and bool(host["Init"]) != desired.init:
        yield FieldChange("init", _text(bool(host["Init"])), _text(desired.init))
    if "Binds" in host:
        have = sorted(host["Binds"] or [])
        binds = sorted(f"{m.source}:{m.target}:{'ro' if m.read_only else 'rw'}"
                       for m in desired.mounts)
        if have != binds:
            yield FieldChange("mounts", _text(have), _text(binds))


def _restart_of(info: ContainerInfo) -> str | None:
    """The restart policy the engine has (None: it did not say)."""
    host = info.raw.get("HostConfig")
    if not host or "RestartPolicy" not in host:
        return None
    return str((host["RestartPolicy"] or {}).get("Name") or "no")


def _ports_bound(want: Iterable[PortMapping], have: Iterable[PortMapping]) -> bool:
    """Every declared binding is in place (an engine-picked host port matches any port)."""
    have = list(have)
    for p in want:
        if not any(h.container_port == p.container_port and h.protocol == p.protocol
                   and (p.host_port == 0 or h.host_port == p.host_port)
                   and ((p.host_ip in _WILDCARD and h.host_ip in _WILDCARD)
                        or p.host_ip == h.host_ip) for h in have):
            return False
    return True


def _ports_text(ports: Iterable[PortMapping]) -> str:
    return ", ".join(
        f"{p.host_ip + ':' if p.host_ip else ''}{p.host_port or '*'}:{p.container_port}"
        f"/{p.protocol}" for p in ports) or "none"


def _shown(name: str, value: Any) -> str | None:
    """Display form of an applied-view field (ports and mounts as Docker writes them)."""
    try:
        if name == "ports" and value is not None:
            return _ports_text(PortMapping(**p) for p in value)
        if name == "mounts" and value is not None:
            return ", ".join(f"{m['source']}:{m['target']}{':ro' if m['read_only'] else ''}"
                             for m in value) or "none"
    except (TypeError, KeyError):
        pass  # an older label layout: fall back to JSON
    return _text(value)


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def _norm(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
