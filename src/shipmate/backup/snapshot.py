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

Apps' storage mounts name a directory and the machine it is on. A restore moves the storage
root's directories to this machine's storage root, so the records follow them: a mount of
the old machine's storage root names this machine's, and a mount on the old machine is on
this one (its app is deployed here). Mounts on other machines of a cluster stay as they are.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import posixpath
from collections.abc import Iterable

from shipmate.errors import ValidationError
from shipmate.paas.storage_rules import StorageMount
from shipmate.store.base import KeyValue

ROOT = "/shipmate/"
SKIPPED = ("/shipmate/endpoints/", "/shipmate/routers/", "/shipmate/fleet/machines/",
           "/shipmate/fleet/states/", "/shipmate/fleet/leader", "/shipmate/fleet/placements/",
           "/shipmate/routes/active/", "/shipmate/tls/challenges/", "/shipmate/journal/")
NOT_RESTORED = ("/shipmate/events/", "/shipmate/events-seq")
_APPS = "/shipmate/apps/"
_STORAGE = "storage"  # the app's mounts (paas.attach)
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

    def mounts(self) -> dict[str, list[StorageMount]]:
        """Every app's storage mounts (apps without any left out)."""
        out = {}
        for key, value in sorted(self.keys.items()):
            app, _, part = key.removeprefix(_APPS).partition("/")
            if key.startswith(_APPS) and part == _STORAGE and (mounts := _mounts(value)):
                out[app] = mounts
        return out

    def storage_moved(self, old: tuple[str, str], new: tuple[str, str]) -> Snapshot:
        """The snapshot with the apps' mounts moved from ``old`` (storage root, machine) to
        ``new``: the storage root's directories and the old machine's mounts."""
        keys = dict(self.keys)
        for app, mounts in self.mounts().items():
            moved = [_moved(m, old, new) for m in mounts]
            if moved != mounts:
                keys[f"{_APPS}{app}/{_STORAGE}"] = json.dumps(
                    [m.to_json() for m in moved], sort_keys=True).encode()
        return Snapshot(self.revision, keys)

    def unit_names(self) -> list[str]:
        """Names of the fleet units in the snapshot."""
        return sorted(k.removeprefix(_UNITS[0]) for k in self.keys if k.startswith(_UNITS[0]))


def outside(mounts: dict[str, list[StorageMount]], root: str, machine: str) -> list[str]:
    """What a backup made on ``machine`` with storage root ``root`` leaves out of the apps'
    mounts, one note each: directories of other machines and outside the storage root."""
    notes = []
    for app, found in sorted(mounts.items()):
        for m in found:
            if m.machine and m.machine != machine:
                notes.append(f"{app}: storage {m.host} is on machine {m.machine} (back it "
                             "up there)")
            elif not _within(m.host, root):
                notes.append(f"{app}: storage {m.host} is outside {root} (back it up "
                             "yourself)")
    return notes


def _within(path: str, root: str) -> bool:
    return path.startswith(root.rstrip("/") + "/")


def _moved(m: StorageMount, old: tuple[str, str], new: tuple[str, str]) -> StorageMount:
    if m.machine not in ("", old[1]):
        return m  # another machine's directory, where it was
    host = m.host
    if old[0] and _within(host, old[0]):
        host = posixpath.join(new[0], host[len(old[0].rstrip("/")) + 1:])
    return dataclasses.replace(m, host=host, machine=new[1] if m.machine else "")


def _mounts(value: bytes) -> list[StorageMount]:
    try:
        return [StorageMount(str(m["host"]), str(m["container"]), str(m.get("machine", "")))
                for m in json.loads(value)]
    except (ValueError, KeyError, TypeError, AttributeError):
        return []


def _version(value: bytes) -> int | None:
    try:
        version = json.loads(value)["version"]
    except (ValueError, KeyError, TypeError):
        return None
    return version if isinstance(version, int) and version > 0 else None
