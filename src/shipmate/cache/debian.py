"""Debian archive indexes, pure: the hashes a Release file promises for Packages indexes and
the SHA256 a Packages index promises for each .deb (hints the cache checks downloads against)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from urllib.parse import quote

from shipmate.cache.mirrors import Hint
from shipmate.cache.policy import PATH_SAFE

_PACKAGES = re.compile(r"(^|/)Packages(\.(gz|xz|bz2))?$")
_RELEASE = re.compile(r"/dists/.+/(InRelease|Release)$")


def is_release(url: str) -> bool:
    """Whether ``url`` names a (In)Release file."""
    return bool(_RELEASE.search(url))


def archive_root(url: str) -> str | None:
    """``http://host/debian/`` for any URL under ``http://host/debian/dists/``."""
    i = url.find("/dists/")
    return url[: i + 1] if i >= 0 else None


def release_hints(text: str, release_url: str) -> list[Hint]:
    """Hints for the Packages indexes a Release lists: their plain and by-hash URLs."""
    base = release_url.rsplit("/", 1)[0] + "/"
    hints: list[Hint] = []
    in_sha256 = False
    for line in text.splitlines():
        if not line.startswith(" "):
            in_sha256 = line.strip() == "SHA256:"
            continue
        parts = line.split()
        if not in_sha256 or len(parts) != 3 or not _PACKAGES.search(parts[2]):
            continue
        digest, _, name = parts
        directory = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
        hints.append((base + name, "sha256", digest.lower()))
        hints.append((f"{base}{directory}by-hash/SHA256/{digest.lower()}", "sha256",
                      digest.lower()))
    return hints


def is_packages_index(url: str, release_names: set[str]) -> bool:
    """Whether ``url`` is a Packages index: by its name, or because a Release listed it
    (``release_names``: URLs hinted by :func:`release_hints`)."""
    return bool(_PACKAGES.search(url.partition("?")[0])) or url in release_names


def packages_hints(lines: Iterable[str], root: str) -> Iterator[Hint]:
    """``(root + Filename, "sha256", SHA256)`` for each stanza of a Packages index."""
    filename = sha = None
    for line in lines:
        if line.startswith("Filename: "):
            filename = line[10:].strip()
        elif line.startswith("SHA256: "):
            sha = line[8:].strip().lower()
        elif not line.strip():
            if filename and sha:
                yield root + quote(filename, safe=PATH_SAFE), "sha256", sha
            filename = sha = None
    if filename and sha:
        yield root + quote(filename, safe=PATH_SAFE), "sha256", sha


def compression(head: bytes) -> str:
    """The compression of a file from its first bytes: xz, gz, bz2 or none."""
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x1f\x8b"):
        return "gz"
    if head.startswith(b"BZh"):
        return "bz2"
    return "none"
