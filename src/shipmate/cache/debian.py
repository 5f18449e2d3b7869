"""Debian archive indexes, pure: the hashes a Release file promises for every index it lists,
the SHA256 a ``Packages`` index promises for each .deb, and the SHA256 a ``Sources`` index
promises for each source package file (hints the cache checks downloads against)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from enum import Enum
from urllib.parse import quote

from shipmate.cache.mirrors import Hint
from shipmate.cache.policy import PATH_SAFE

_RELEASE = re.compile(r"/dists/.+/(InRelease|Release)$")
_PACKAGES = re.compile(r"(^|/)Packages(\.(gz|xz|bz2))?$")
_SOURCES = re.compile(r"(^|/)Sources(\.(gz|xz|bz2))?$")
# by-hash copies are named by their hash, not their kind: Packages indexes (and the small
# Release of their directory) live in binary-ARCH/, Sources indexes in source/
_PACKAGES_BY_HASH = re.compile(r"/binary-[^/]+/by-hash/[^/]+/[^/]+$")
_SOURCES_BY_HASH = re.compile(r"/source/by-hash/[^/]+/[^/]+$")

Scan = Callable[[bytes, str], Iterator[Hint]]


class Index(Enum):
    """An index that promises the hashes of files in the archive's pool."""

    PACKAGES = "Packages"
    SOURCES = "Sources"


def is_release(url: str) -> bool:
    """Whether ``url`` names a (In)Release file."""
    return bool(_RELEASE.search(url))


def archive_root(url: str) -> str | None:
    """``http://host/debian/`` for any URL under ``http://host/debian/dists/``."""
    i = url.find("/dists/")
    return url[: i + 1] if i >= 0 else None


def release_hints(text: str, release_url: str) -> list[Hint]:
    """Hints for every file a Release lists under ``SHA256:`` (Packages, Sources,
    Translation, Contents... indexes), by their names (a by-hash URL carries its own)."""
    base = release_url.rsplit("/", 1)[0] + "/"
    hints: list[Hint] = []
    in_sha256 = False
    for line in text.splitlines():
        if not line.startswith(" "):
            in_sha256 = line.strip() == "SHA256:"
            continue
        parts = line.split()
        if not in_sha256 or len(parts) != 3 or (url := _under(base, parts[2])) is None:
            continue
        hints.append((url, "sha256", parts[0].lower()))
    return hints


def release_scope(hints: list[Hint], release_url: str) -> list[str]:
    """The URL prefixes a Release's ``hints`` speak for: one per component (``main/``...) or
    top-level file it lists. A newer Release replaces what an older one said under them, and
    leaves alone a suite nested in the same directory (``dists/stretch/updates/``)."""
    base = release_url.rsplit("/", 1)[0] + "/"
    scope = set()
    for url, _, _ in hints:
        first, slash, _ = url[len(base):].partition("/")
        scope.add(base + first + slash)
    return sorted(scope)


def index_kind(url: str) -> Index | None:
    """Which pool index ``url`` (under ``dists/``) is, by its name or its by-hash directory;
    None for any other file. A by-hash file of ``binary-ARCH/`` may also be that directory's
    small Release, in which a parse finds no hashes."""
    path = url.partition("?")[0]
    if archive_root(path) is None:
        return None
    if _PACKAGES.search(path) or _PACKAGES_BY_HASH.search(path):
        return Index.PACKAGES
    if _SOURCES.search(path) or _SOURCES_BY_HASH.search(path):
        return Index.SOURCES
    return None


def packages_hints(blocks: Iterable[bytes], root: str) -> Iterator[Hint]:
    """``(root + Filename, "sha256", SHA256)`` for each stanza of a Packages index, given as
    decompressed blocks of any size. Scans with ``bytes.find``: a 50 MB index takes about a
    second, where line-by-line parsing took several."""
    return _stanzas(blocks, root, _scan_packages)


def sources_hints(blocks: Iterable[bytes], root: str) -> Iterator[Hint]:
    """``(root + Directory/name, "sha256", SHA256)`` for every file a stanza of a Sources
    index lists under ``Checksums-Sha256`` (the .dsc, its tarballs, its diff), given as
    decompressed blocks of any size."""
    return _stanzas(blocks, root, _scan_sources)


def hints_of(kind: Index) -> Callable[[Iterable[bytes], str], Iterator[Hint]]:
    """The scanner of an index of ``kind``: :func:`packages_hints` or :func:`sources_hints`."""
    return packages_hints if kind is Index.PACKAGES else sources_hints


def _stanzas(blocks: Iterable[bytes], root: str, scan: Scan) -> Iterator[Hint]:
    """``scan`` over buffers of whole stanzas, each starting with a newline, wherever the
    blocks' edges fall."""
    tail = b"\n"
    for block in blocks:
        buf = tail + block
        cut = buf.rfind(b"\n\n")
        if cut < 0:
            tail = buf
            continue
        yield from scan(buf[: cut + 1], root)
        tail = buf[cut + 1:]
    yield from scan(tail + b"\n", root)


def _under(root: str, name: str) -> str | None:
    """The URL of ``name``, relative to ``root``; None for a name that would leave it."""
    if not name or name.startswith("/") or ".." in name.split("/"):
        return None
    return root + quote(name, safe=PATH_SAFE)


def _field(buf: bytes, start: int) -> str:
    end = buf.find(b"\n", start)
    return buf[start: end if end >= 0 else len(buf)].decode("utf-8", "replace").strip()


def _scan_packages(buf: bytes, root: str) -> Iterator[Hint]:
    i = 0
    while (i := buf.find(b"\nFilename: ", i)) >= 0:
        stanza_end = buf.find(b"\n\n", i)
        stanza_end = len(buf) if stanza_end < 0 else stanza_end
        j = buf.find(b"\nSHA256: ", i, stanza_end)
        if j >= 0 and (url := _under(root, _field(buf, i + 11))) is not None:
            yield url, "sha256", _field(buf, j + 9).lower()
        i += 11


def _scan_sources(buf: bytes, root: str) -> Iterator[Hint]:
    i = 0
    while (i := buf.find(b"\nChecksums-Sha256:", i)) >= 0:
        start = buf.rfind(b"\n\n", 0, i) + 1
        end = buf.find(b"\n\n", i)
        end = len(buf) if end < 0 else end
        d = buf.find(b"\nDirectory: ", start, end)
        if d >= 0:
            directory = _field(buf, d + 12).strip("/")
            yield from _checksums(buf[buf.find(b"\n", i + 1): end], root, directory)
        i = end


def _checksums(lines: bytes, root: str, directory: str) -> Iterator[Hint]:
    """The `` SHA256 size name`` lines that continue a field (``lines`` starts with the
    newline that ends the field's first line)."""
    for line in lines.split(b"\n")[1:]:
        if not line.startswith((b" ", b"\t")):
            return
        parts = line.decode("utf-8", "replace").split()
        if len(parts) == 3 and (url := _under(root, f"{directory}/{parts[2]}")) is not None:
            yield url, "sha256", parts[0].lower()


def compression(head: bytes) -> str:
    """The compression of a file from its first bytes: xz, gz, bz2 or none."""
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x1f\x8b"):
        return "gz"
    if head.startswith(b"BZh"):
        return "bz2"
    return "none"
