"""The store snapshot in a backup: which keys go in, how they are written, and which of them
a restore writes back (pure).

A backup reads every key under ``/shipmate/`` in one range, so at one store revision. It
leaves out what only describes the running moment and is rebuilt by the machines that run:
keys under a lease (heartbeats, unit states, endpoints, the leader, deploy locks), unit
placements (they name machines), the routers' progress, the active release of each route
(it names instances that will not exist), pending ACME challenges and the agents' journal.

A restore writes the rest back, except: the units of app instances and of services (the
restore starts them itself, once their images exist: an app's current release rebuilt from
its repository, a service's image built from Debian's packages), and the audit trail (the
restored machine's own trail goes on; the archive keeps the old one).
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterable

from shipmate.errors import ValidationError
from shipmate.store.base import KeyValue

ROOT = "/shipmate/"
SKIPPED = ("/shipmate/endpoints/", "/shipmate/routers/", "/shipmate/fleet/machines/",
           "/shipmate/fleet/states/", "/shipmate/fleet/leader", "/shipmate/fleet/placements/",
           "/shipmate/routes/active/", "/shipmate/tls/challenges/", "/shipmate/journal/")
NOT_RESTORED = ("/shipmate/events/", "/shipmate/events-seq")
_APPS = "/shipmate/apps/"
_SERVICES = "/shipmate/services/"
_UNITS = ("/shipmate/fleet/units/", "/shipmate/fleet/desired/")


def kept(kv: KeyValue) -> bool:
    """True when ``kv`` belongs in a backup."""
    return kv.lease == 0 and not kv.key.startswith(SKIPPED)


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """Keys and values read at one store revision."""

    revision: int
    keys: dict[str, bytes]

    def to_json(self) -> bytes:
        """``store.json``: values base64'd (they are bytes), keys sorted."""
        return json.dumps({"revision": self.revision, "keys": [
            {"key": k, "value": base64.b64encode(v).decode()} for k, v in sorted(
                self.keys.items())]}, indent=0).encode()

    @staticmethod
    def from_json(text: bytes) -> Snapshot:
        """Read ``store.json`` back."""
        try:
            data = json.loads(text)
            keys = {str(e["key"]): base64.b64decode(e["value"], validate=True)
                    for e in data["keys"]}
            revision = int(data["revision"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValidationError(f"store.json is not a store snapshot ({exc!r})") from exc
        bad = sorted(k for k in keys if not k.startswith(ROOT))
        if bad:
            raise ValidationError(f"store.json holds a key outside {ROOT}: {bad[0]!r}")
        return Snapshot(revision, keys)

    @staticmethod
    def of(kvs: Iterable[KeyValue], revision: int) -> Snapshot:
        """The backup's snapshot of a range read at ``revision``."""
        return Snapshot(revision, {kv.key: kv.value for kv in kvs if kept(kv)})

    def apps(self) -> dict[str, int | None]:
        """Every app, with the version of its current release (None: never deployed)."""
        out: dict[str, int | None] = {}
        for key, value in self.keys.items():
            app, _, part = key.removeprefix(_APPS).partition("/")
            if key.startswith(_APPS) and part == "meta":
                out.setdefault(app, None)
            elif key.startswith(_APPS) and part == "current":
                out[app] = _version(value)
        return {a: v for a, v in sorted(out.items()) if f"{_APPS}{a}/meta" in self.keys}

    def services(self) -> list[tuple[str, str, bytes]]:
        """Every service as (kind, name, its record)."""
        out = []
        for key, value in sorted(self.keys.items()):
            parts = key.removeprefix(_SERVICES).split("/")
            if key.startswith(_SERVICES) and len(parts) == 3 and parts[2] == "meta":
                out.append((parts[0], parts[1], value))
        return out

    def restored_keys(self, unit_is_restarted: set[str]) -> dict[str, bytes]:
        """The keys a restore writes back: all but the audit trail and the units in
        ``unit_is_restarted`` (apps' instances and services, which the restore starts)."""
        out = {}
        for key, value in self.keys.items():
            if key.startswith(NOT_RESTORED):
                continue
            if key.startswith(_UNITS) and key.rpartition("/")[2] in unit_is_restarted:
                continue
            out[key] = value
        return out

    def unit_names(self) -> list[str]:
        """Names of the fleet units in the snapshot."""
        return sorted(k.removeprefix(_UNITS[0]) for k in self.keys if k.startswith(_UNITS[0]))


def _version(value: bytes) -> int | None:
    try:
        version = json.loads(value)["version"]
    except (ValueError, KeyError, TypeError):
        return None
    return version if isinstance(version, int) and version > 0 else None
