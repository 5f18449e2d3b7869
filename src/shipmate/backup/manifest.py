"""The archive's layout and its manifest, and the rules a verified archive meets (pure).

Layout of a backup archive (a gzip'd tar)::

    manifest.json                    this module's :class:`Manifest`
    store.json                       the store snapshot (:mod:`.snapshot`)
    repos/<app>.bundle               ``git bundle create --all`` of each app's repository
    ca/<file>                        the cluster CA's directory, when the machine has one
    keys/ssh_host_ed25519_key        the SSH server's host key (known_hosts stay valid)
    services/<kind>/<name>.dump      ``pg_dump -Fc`` (postgres) or an RDB (redis)
    storage/<name>/...               each directory of the storage root (``storage:mount``):
                                     directories, files and symbolic links with their modes,
                                     owners and times

Rules checked by :func:`problems`: the manifest is a Shipmate manifest of a format this
version reads; every member it lists is in the archive with the size and SHA-256 it gives;
the archive holds nothing else; every name is one of the layout's (no absolute path, no
``..``), so extracting it can only write where restore means to. Members are regular files
with their bytes checksummed, except under ``storage/``, where directories (size 0, the
checksum of nothing) and symbolic links (the checksum of their target) are members too, and
a storage member's type, mode and owner in the tar header must be the manifest's.
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
STORAGE = "storage/"
FILE, DIR, SYMLINK = "file", "dir", "symlink"
KIND = "shipmate-backup"
_REPO = re.compile(r"^repos/[a-z0-9][a-z0-9.-]*\.bundle$")
_SERVICE = re.compile(r"^services/(postgres|redis)/[a-z0-9][a-z0-9-]{0,39}\.dump$")
_CA = re.compile(r"^ca/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
# A storage directory's name (storage_rules' NAME), then the app's own file names.
_STORAGE = re.compile(r"^storage/[a-z0-9][a-z0-9._-]{0,62}(/[^/\x00]+)*$")
_META = ("mode", "uid", "gid", "mtime")


@dataclasses.dataclass(frozen=True)
class Member:
    """One member of the archive as the manifest lists it. Storage members also carry their
    type, permission bits, owner and modification time, which a restore gives them back."""

    name: str
    size: int
    sha256: str
    type: str = FILE
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    mtime: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The member's entry in ``manifest.json`` (storage fields only when set)."""
        out: dict[str, Any] = {"name": self.name, "size": self.size, "sha256": self.sha256}
        if self.type != FILE:
            out["type"] = self.type
        out.update({k: getattr(self, k) for k in _META if getattr(self, k) is not None})
        return out

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Member:
        """Read an entry of ``members`` (KeyError, TypeError or ValueError when bad)."""
        kind = str(data.get("type", FILE))
        if kind not in (FILE, DIR, SYMLINK):
            raise ValueError(f"member type {kind!r}")
        meta = {k: int(data[k]) for k in _META if data.get(k) is not None}
        return Member(str(data["name"]), int(data["size"]), str(data["sha256"]), kind, **meta)


@dataclasses.dataclass(frozen=True)
class StorageDir:
    """The size line of one storage directory in the manifest."""

    name: str
    files: int
    bytes: int


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
    storage: tuple[StorageDir, ...] = ()  # the storage root's directories
    storage_root: str = ""  # STATE/storage on the machine that made it
    format: int = FORMAT

    def to_json(self) -> bytes:
        """The ``manifest.json`` text."""
        data = dataclasses.asdict(self)
        data["members"] = [m.to_json() for m in self.members]
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
                members=tuple(Member.from_json(m) for m in data["members"]),
                apps=tuple(str(a) for a in data.get("apps", ())),
                services=tuple(str(s) for s in data.get("services", ())),
                notes=tuple(str(n) for n in data.get("notes", ())),
                storage=tuple(StorageDir(str(s["name"]), int(s["files"]), int(s["bytes"]))
                              for s in data.get("storage", ())),
                storage_root=str(data.get("storage_root", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise _bad(f"a field is missing or of the wrong type ({exc!r})") from exc

    def summary(self) -> dict[str, Any]:
        """The manifest's facts for ``backup verify --format json``."""
        return {"version": self.version, "created": self.created,
                "store_revision": self.store_revision, "machine": self.machine,
                "apps": list(self.apps), "services": list(self.services),
                "members": len(self.members), "notes": list(self.notes),
                "storage": [dataclasses.asdict(s) for s in self.storage]}


def _bad(why: str) -> ValidationError:
    return ValidationError(f"manifest.json is not valid: {why}",
                           hint="this file is not a Shipmate backup, or it was changed")


def allowed_name(name: str) -> bool:
    """True when ``name`` is a member name of the layout (safe to extract)."""
    if name in (MANIFEST, STORE, HOST_KEY):
        return True
    if ".." in name.split("/"):
        return False
    if name.startswith(STORAGE):
        return "." not in name.split("/") and bool(_STORAGE.fullmatch(name))
    return bool(_REPO.fullmatch(name) or _SERVICE.fullmatch(name) or _CA.fullmatch(name))


def problems(manifest: Manifest, seen: Mapping[str, Member]) -> list[str]:
    """What is wrong with an archive whose members (other than the manifest) were read as
    ``seen`` (name -> what the archive holds); empty when it is sound."""
    out: list[str] = []
    listed = {m.name: m for m in manifest.members}
    if STORE not in listed:
        out.append(f"the manifest lists no {STORE} (the store snapshot)")
    for name, member in sorted(listed.items()):
        if not allowed_name(name):
            out.append(f"{name}: not a name a Shipmate backup holds")
        elif name not in seen:
            out.append(f"{name}: missing from the archive")
        elif seen[name].type != member.type:
            out.append(f"{name}: a {seen[name].type}, the manifest says a {member.type}")
        elif seen[name].size != member.size:
            out.append(f"{name}: {seen[name].size} bytes, the manifest says {member.size}")
        elif seen[name].sha256 != member.sha256:
            out.append(f"{name}: SHA-256 does not match the manifest (changed or damaged)")
        elif name.startswith(STORAGE) and _meta(seen[name]) != _meta(member):
            out.append(f"{name}: mode, owner or time is not the manifest's "
                       f"({_meta(seen[name])} against {_meta(member)})")
    for name in sorted(set(seen) - set(listed)):
        out.append(f"{name}: in the archive but not in the manifest")
    return out


def _meta(m: Member) -> tuple[int | None, ...]:
    return tuple(getattr(m, k) for k in _META)
