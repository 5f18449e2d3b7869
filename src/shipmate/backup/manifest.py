"""The archive's layout and its manifest, and the rules a verified archive meets (pure).

Layout of a backup archive (a gzip'd tar)::

    manifest.json                    this module's :class:`Manifest`
    store.json                       the store snapshot (:mod:`.snapshot`)
    repos/<app>.bundle               ``git bundle create --all`` of each app's repository
    ca/<file>                        the cluster CA's directory, when the machine has one
    keys/ssh_host_ed25519_key        the SSH server's host key (known_hosts stay valid)
    services/<kind>/<name>.dump      ``pg_dump -Fc`` (postgres) or an RDB (redis)

Rules checked by :func:`problems`: the manifest is a Shipmate manifest of a format this
version reads; every member it lists is in the archive with the size and SHA-256 it gives;
the archive holds nothing else; every name is one of the layout's (no absolute path, no
``..``), so extracting it can only write where restore means to.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any

from shipmate.errors import ValidationError

FORMAT = 1
MANIFEST = "manifest.json"
STORE = "store.json"
REPOS = "repos/"
CA = "ca/"
SERVICES = "services/"
HOST_KEY = "keys/ssh_host_ed25519_key"
KIND = "shipmate-backup"
_REPO = re.compile(r"^repos/[a-z0-9][a-z0-9.-]*\.bundle$")
_SERVICE = re.compile(r"^services/(postgres|redis)/[a-z0-9][a-z0-9-]{0,39}\.dump$")
_CA = re.compile(r"^ca/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


@dataclasses.dataclass(frozen=True)
class Member:
    """One file of the archive as the manifest lists it."""

    name: str
    size: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class Manifest:
    """What an archive holds and where it came from."""

    version: str  # Shipmate's version that made it
    created: str  # ISO 8601, UTC
    store_revision: int
    machine: str
    members: tuple[Member, ...]
    apps: tuple[str, ...] = ()
    services: tuple[str, ...] = ()  # kind:name of every service in the snapshot
    notes: tuple[str, ...] = ()  # what was left out when it was made, and why
    format: int = FORMAT

    def to_json(self) -> bytes:
        """The ``manifest.json`` text."""
        data = dataclasses.asdict(self)
        data["kind"] = KIND
        return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()

    @staticmethod
    def from_json(text: bytes) -> Manifest:
        """Read ``manifest.json``; a ValidationError says what is wrong with it."""
        try:
            data = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _bad(f"it is not JSON ({exc})") from exc
        if not isinstance(data, dict) or data.get("kind") != KIND:
            raise _bad("it is not a Shipmate backup manifest")
        if data.get("format") != FORMAT:
            raise _bad(f"format {data.get('format')!r} is not the one this version reads "
                       f"({FORMAT})")
        try:
            return Manifest(
                version=str(data["version"]), created=str(data["created"]),
                store_revision=int(data["store_revision"]), machine=str(data["machine"]),
                members=tuple(Member(str(m["name"]), int(m["size"]), str(m["sha256"]))
                              for m in data["members"]),
                apps=tuple(str(a) for a in data.get("apps", ())),
                services=tuple(str(s) for s in data.get("services", ())),
                notes=tuple(str(n) for n in data.get("notes", ())))
        except (KeyError, TypeError, ValueError) as exc:
            raise _bad(f"a field is missing or of the wrong type ({exc!r})") from exc

    def summary(self) -> dict[str, Any]:
        """The manifest's facts for ``backup verify --format json``."""
        return {"version": self.version, "created": self.created,
                "store_revision": self.store_revision, "machine": self.machine,
                "apps": list(self.apps), "services": list(self.services),
                "members": len(self.members), "notes": list(self.notes)}


def _bad(why: str) -> ValidationError:
    return ValidationError(f"manifest.json is not valid: {why}",
                           hint="this file is not a Shipmate backup, or it was changed")


def allowed_name(name: str) -> bool:
    """True when ``name`` is a member name of the layout (safe to extract)."""
    if name in (MANIFEST, STORE, HOST_KEY):
        return True
    if ".." in name.split("/"):
        return False
    return bool(_REPO.fullmatch(name) or _SERVICE.fullmatch(name) or _CA.fullmatch(name))


def problems(manifest: Manifest, seen: Mapping[str, tuple[int, str]]) -> list[str]:
    """What is wrong with an archive whose members (other than the manifest) were read as
    ``seen`` (name -> (size, sha256)); empty when it is sound."""
    out: list[str] = []
    listed = {m.name: m for m in manifest.members}
    if STORE not in listed:
        out.append(f"the manifest lists no {STORE} (the store snapshot)")
    for name, member in sorted(listed.items()):
        if not allowed_name(name):
            out.append(f"{name}: not a name a Shipmate backup holds")
        elif name not in seen:
            out.append(f"{name}: missing from the archive")
        elif seen[name][0] != member.size:
            out.append(f"{name}: {seen[name][0]} bytes, the manifest says {member.size}")
        elif seen[name][1] != member.sha256:
            out.append(f"{name}: SHA-256 does not match the manifest (changed or damaged)")
    for name in sorted(set(seen) - set(listed)):
        out.append(f"{name}: in the archive but not in the manifest")
    return out
