"""The scheduler's records: what the registry stores and placement reads (pure).

Every record is a frozen dataclass with ``to_json()`` / ``from_json()``; the registry
(:mod:`shipmate.scheduler.registry`) stores them as compact JSON under ``/shipmate/fleet/``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Literal

from shipmate.errors import ValidationError
from shipmate.spec.unitreqs import Requirements

DesiredState = Literal["inactive", "loaded", "launched"]
DESIRED_STATES: tuple[DesiredState, ...] = ("inactive", "loaded", "launched")


def dumps(data: Mapping[str, Any]) -> bytes:
    """Compact, key-sorted JSON (stable bytes, so equal records compare equal in the store)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def loads(raw: bytes | str) -> dict[str, Any]:
    """Parse a stored JSON object."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def parse_desired(text: str) -> DesiredState:
    """Validate a desired state name (fleet's ``ParseJobState``)."""
    if text not in DESIRED_STATES:
        raise ValidationError(f"invalid desired state {text!r}",
                              hint="use inactive, loaded or launched")
    return text


def requirements_from_json(data: Mapping[str, Any]) -> Requirements:
    """Reverse :meth:`Requirements.to_json`."""
    meta = data.get("metadata") or {}
    return Requirements(
        machine_id=data.get("machine_id"),
        machine_of=tuple(data.get("machine_of") or ()),
        metadata=tuple(sorted((k, tuple(v)) for k, v in meta.items())),
        conflicts=tuple(data.get("conflicts") or ()),
        replaces=tuple(data.get("replaces") or ()),
        global_=bool(data.get("global")),
        reserve_memory=int(data.get("reserve_memory") or 0),
        reserve_cpus=float(data.get("reserve_cpus") or 0.0),
    )


@dataclasses.dataclass(frozen=True)
class UnitRecord:
    """A submitted unit file: name, text as submitted, fleet hash, parsed requirements."""

    name: str
    text: str
    hash: str
    requirements: Requirements = dataclasses.field(default_factory=Requirements)

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict."""
        return {"name": self.name, "text": self.text, "hash": self.hash,
                "requirements": self.requirements.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UnitRecord:
        """Reverse :meth:`to_json`."""
        return cls(data["name"], data["text"], data["hash"],
                   requirements_from_json(data.get("requirements") or {}))


@dataclasses.dataclass(frozen=True)
class Machine:
    """A live machine, as its agent's heartbeat publishes it (under the agent's lease).

    ``cpus`` and ``memory`` (bytes) are what units may reserve there in all; 0 means not
    reported, and then only units that reserve nothing of it are placed there.
    """

    id: str
    public_ip: str = ""
    metadata: tuple[tuple[str, str], ...] = ()
    cpus: float = 0.0
    memory: int = 0

    @property
    def metadata_dict(self) -> dict[str, str]:
        """Metadata as a dict."""
        return dict(self.metadata)

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict."""
        out: dict[str, Any] = {"id": self.id, "public_ip": self.public_ip,
                               "metadata": dict(self.metadata)}
        if self.cpus or self.memory:
            out["resources"] = {"cpus": self.cpus, "memory": self.memory}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Machine:
        """Reverse :meth:`to_json`."""
        meta = data.get("metadata") or {}
        res = data.get("resources") or {}
        return cls(data["id"], data.get("public_ip", ""), tuple(sorted(meta.items())),
                   float(res.get("cpus") or 0.0), int(res.get("memory") or 0))


def parse_metadata(text: str) -> tuple[tuple[str, str], ...]:
    """fleet's ``--metadata`` syntax, ``k=v,k2=v2``, as sorted pairs."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValidationError(f"machine metadata {part!r} is not key=value",
                                  hint="write SHIPMATE_METADATA=region=eu,disk=ssd")
        out[key.strip()] = value.strip()
    return tuple(sorted(out.items()))


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where the scheduler put a unit: one machine, or every matching one for Global units."""

    unit: str
    machines: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict."""
        return {"unit": self.unit, "machines": list(self.machines)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Placement:
        """Reverse :meth:`to_json`."""
        return cls(data["unit"], tuple(data.get("machines") or ()))


@dataclasses.dataclass(frozen=True)
class UnitState:
    """What an agent reports about one unit it runs (systemd's load/active/sub states)."""

    unit: str
    machine: str
    load_state: str = "loaded"
    active_state: str = "inactive"
    sub_state: str = "dead"
    hash: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UnitState:
        """Reverse :meth:`to_json`."""
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


@dataclasses.dataclass(frozen=True)
class Leader:
    """The current scheduler leader."""

    machine: str

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict."""
        return {"machine": self.machine}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Leader:
        """Reverse :meth:`to_json`."""
        return cls(data["machine"])
