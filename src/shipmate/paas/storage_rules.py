"""Persistent storage rules (pure): which host directories an app may mount, and where.

Dokku's ``storage:mount APP HOST_PATH:CONTAINER_PATH``, with the host side checked before
anything is recorded:

- A host path is absolute and normalised: no ``..`` or ``.`` parts, no ``//``, no ``:``.
- It may not be ``/``, a system directory (``/etc``, ``/proc``, ``/usr``, ...) or anything
  inside one, the Docker socket, or the state directory, or anything that *contains* one of
  those (mounting ``/var`` would hand out ``/var/run/docker.sock`` and ``/var/lib/shipmate``).
  Inside the state directory only the storage root (``STATE/storage/NAME``) may be mounted.
- Over SSH (``remote``) the host is the server, whose paths a key holder does not own: only a
  directory made by ``storage:ensure-directory`` (a direct child of the storage root) is
  accepted there.
- A ``NAME`` without a slash is shorthand for that storage root directory.

The container side is absolute and normalised, and not ``/`` or ``/proc``, ``/sys``, ``/dev``.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from collections.abc import Iterable

from shipmate.errors import ValidationError

#: Host directories no app mounts, nor anything inside them or containing them.
PROTECTED = ("/etc", "/proc", "/sys", "/dev", "/boot", "/root", "/usr", "/bin", "/sbin",
             "/lib", "/lib32", "/lib64", "/run", "/var/run", "/var/lib/docker")
#: Where inside a container nothing may be mounted.
CONTAINER_PROTECTED = ("/proc", "/sys", "/dev")
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")
STORAGE_DIR = "storage"
_STORAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_REFUSED = "Refusing to mount"
# Paths go into unit files (where % and quotes mean something) and Docker's -v syntax.
_PATH_CHARS = re.compile(r"^[A-Za-z0-9/._@+-]+$")


@dataclasses.dataclass(frozen=True, order=True)
class StorageMount:
    """One mount of an app: a host directory at a path in every process container; ``machine``
    is the machine whose directory it is (the app runs there)."""

    host: str
    container: str
    machine: str = ""

    @property
    def spec(self) -> str:
        """``HOST:CONTAINER`` as Dokku prints it (and as ``Volume=`` takes it)."""
        return f"{self.host}:{self.container}"

    def to_json(self) -> dict[str, str]:
        """JSON-able form."""
        return dataclasses.asdict(self)


def storage_root(state_dir: str) -> str:
    """``STATE/storage``: where ``storage:ensure-directory`` makes directories."""
    return posixpath.join(posixpath.normpath(state_dir), STORAGE_DIR)


def validate_storage_name(name: str) -> str:
    """A ``storage:ensure-directory`` name: lower case letters, digits, ``.``, ``_``, ``-``."""
    if not _STORAGE_NAME.fullmatch(name) or ".." in name:
        raise ValidationError(f"Invalid storage directory name {name!r}",
                              hint="use lowercase letters, digits, '.', '_' and '-', e.g. "
                                   "the app's name")
    return name


def _normal(path: str, what: str) -> str:
    if not path.startswith("/"):
        raise ValidationError(f"{_REFUSED} {path!r}: the {what} path must be absolute")
    parts = path.split("/")[1:]
    if any(p in ("..", ".") for p in parts) or "//" in path:
        raise ValidationError(f"{_REFUSED} {path!r}: the {what} path may not contain '..', "
                              "'.' or '//'", hint="write the plain absolute path")
    if not _PATH_CHARS.fullmatch(path):
        raise ValidationError(f"{_REFUSED} {path!r}: the {what} path has characters other "
                              "than letters, digits and / . _ @ + -")
    return path.rstrip("/") or "/"


def _within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def check_host_path(path: str, state_dir: str, *, remote: bool,
                    extra_protected: Iterable[str] = ()) -> str:
    """The host path a mount may use (normalised), or a ValidationError saying why not.
    A bare ``NAME`` means the storage root's directory ``NAME``."""
    root = storage_root(state_dir)
    if "/" not in path:
        path = posixpath.join(root, validate_storage_name(path))
    path = _normal(path, "host")
    state = posixpath.normpath(state_dir)
    if path == "/":
        raise ValidationError(f"{_REFUSED} '/': the host's root directory is never mounted")
    if remote:
        if posixpath.dirname(path) != root:
            raise ValidationError(
                f"{_REFUSED} {path!r} over SSH: only directories made by "
                "storage:ensure-directory can be mounted from a remote session",
                hint=f"run `storage:ensure-directory NAME`, then mount {root}/NAME")
        return path
    if _within(path, root) and path != root:
        return path
    for protected in (*PROTECTED, *DOCKER_SOCKETS, state, *extra_protected):
        if _within(path, protected) or _within(protected, path):
            raise ValidationError(
                f"{_REFUSED} {path!r}: it is or holds {protected}, which no app may see",
                hint=f"make a directory for the app with storage:ensure-directory (under {root})"
                     " or use another directory")
    return path


def check_container_path(path: str) -> str:
    """The container side of a mount (normalised), or a ValidationError."""
    path = _normal(path, "container")
    if path == "/" or any(_within(path, p) for p in CONTAINER_PROTECTED):
        raise ValidationError(f"{_REFUSED} over {path!r} in the container",
                              hint="mount at an app directory such as /app/storage or /data")
    return path


def parse_mount(text: str, state_dir: str, *, remote: bool, machine: str) -> StorageMount:
    """``HOST_PATH:CONTAINER_PATH`` (or ``NAME:CONTAINER_PATH``) checked into a mount."""
    host, sep, container = text.partition(":")
    if not sep or not host or not container or ":" in container:
        raise ValidationError(f"Invalid mount {text!r}",
                              hint="use HOST_PATH:CONTAINER_PATH, e.g. "
                                   f"{storage_root(state_dir)}/myapp:/app/storage")
    return StorageMount(check_host_path(host, state_dir, remote=remote),
                        check_container_path(container), machine)


def add_mount(mounts: list[StorageMount], new: StorageMount) -> list[StorageMount]:
    """The mounts with ``new`` added; one directory per container path, and an app's
    storage on one machine (its containers run where the directories are)."""
    if any(m.container == new.container for m in mounts):
        raise ValidationError(f"Mount path {new.container} already in use",
                              hint="storage:unmount it first, or choose another path")
    other = sorted({m.machine for m in mounts if m.machine and m.machine != new.machine})
    if other:
        raise ValidationError(f"the app's other storage is on machine {other[0]}",
                              hint="an app's storage lives on one machine: run storage:mount "
                                   f"on {other[0]}")
    return sorted([*mounts, new])


def remove_mount(mounts: list[StorageMount], gone: StorageMount) -> list[StorageMount]:
    """The mounts without ``gone`` (matched by host and container path)."""
    left = [m for m in mounts if (m.host, m.container) != (gone.host, gone.container)]
    if len(left) == len(mounts):
        raise ValidationError(f"Mount path does not exist: {gone.spec}",
                              hint="storage:list APP shows the app's mounts")
    return left
