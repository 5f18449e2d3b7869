"""Parsing a Debian ``Packages`` or ``Sources`` index while it downloads, in bounded memory.

A thread follows the temp file as the download writes it, decompresses it in pieces of at most
:data:`OUT` bytes, scans each stanza for the hashes it promises (``Filename`` and ``SHA256`` of a
.deb; ``Directory`` and ``Checksums-Sha256`` of source package files) and stages them on disk
(``hints.sqlite``). Once the index itself is verified the staged hashes become hints in one
transaction; if it fails they are dropped. So a ``.deb`` asked for right after ``apt-get update``
waits at most for the promotion, not for a whole decompress-and-parse, and neither the index nor
its decompressed text is ever held in memory.
"""

from __future__ import annotations

import asyncio
import bz2
import itertools
import logging
import lzma
import os
import threading
import zlib
from collections.abc import Iterable, Iterator
from typing import Protocol

from shipmate.cache import debian
from shipmate.cache.storage import Storage

log = logging.getLogger(__name__)

READ = 64 * 1024  # compressed bytes read at a time
OUT = 256 * 1024  # decompressed bytes produced at a time


class _Decompressor(Protocol):
    def decompress(self, data: bytes, max_length: int = ...) -> bytes: ...


def decompressed(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The decompressed content of ``chunks`` (xz, gzip, bzip2 or plain, by its first bytes),
    in pieces of at most :data:`OUT` bytes whatever the compression ratio."""
    it = iter(chunks)
    head = b""
    for chunk in it:
        head += chunk
        if len(head) >= 8:
            break
    kind = debian.compression(head)
    if kind == "none":
        yield head
        yield from it
        return
    if kind == "gz":
        yield from _inflate(itertools.chain([head], it))
        return
    dec: lzma.LZMADecompressor | bz2.BZ2Decompressor = (
        lzma.LZMADecompressor() if kind == "xz" else bz2.BZ2Decompressor())
    for data in itertools.chain([head], it):
        out = dec.decompress(data, OUT)
        while out:
            yield out
            if dec.eof or dec.needs_input:
                break
            out = dec.decompress(b"", OUT)
        if dec.eof:
            return


def _inflate(chunks: Iterable[bytes]) -> Iterator[bytes]:
    dec = zlib.decompressobj(wbits=31)
    for data in chunks:
        while data:
            out = dec.decompress(data, OUT)
            if out:
                yield out
            data = dec.unconsumed_tail
        if dec.eof:
            return
    yield dec.flush()


class GrowingFile:
    """Reads a file another party is still writing: :meth:`grow` says how much is written,
    :meth:`end` that no more will be. Thread-safe; :meth:`chunks` runs in the reading thread."""

    def __init__(self, fd: int) -> None:
        self._fd = os.dup(fd)
        self._limit = 0
        self._ended = False
        self._wake = threading.Event()

    def grow(self, limit: int) -> None:
        """``limit`` bytes are now in the file."""
        self._limit = limit
        self._wake.set()

    def end(self) -> None:
        """No more bytes will come."""
        self._ended = True
        self._wake.set()

    def chunks(self) -> Iterator[bytes]:
        """The file's bytes as they are written, until :meth:`end`; closes the file after."""
        offset = 0
        try:
            while True:
                limit = self._limit
                if offset < limit:
                    data = os.pread(self._fd, min(READ, limit - offset), offset)
                    if not data:
                        return
                    offset += len(data)
                    yield data
                elif self._ended:
                    return
                else:
                    self._wake.clear()  # clear, then look again: a grow() is never missed
                    if self._limit == offset and not self._ended:
                        self._wake.wait()
        finally:
            os.close(self._fd)


class IndexParser:
    """Stages the hashes of one ``Packages`` or ``Sources`` index download (see the module
    docstring).

    ``grow(n)`` after each chunk written, ``done(verified)`` exactly once at the end; ``task``
    completes when the hashes are promoted (or dropped)."""

    _ids = itertools.count(1)

    def __init__(self, storage: Storage, url: str, fd: int, kind: debian.Index) -> None:
        root = debian.archive_root(url)
        if root is None:
            raise ValueError(f"not under dists/: {url}")
        self.url = url
        self.kind = kind
        self._root = root
        self._storage = storage
        self._batch = f"{os.getpid()}-{next(self._ids)}"
        self._file = GrowingFile(fd)
        self._verified = False
        self._verdict = threading.Event()
        self.task: asyncio.Task[int] = asyncio.create_task(asyncio.to_thread(self._run))

    def grow(self, written: int) -> None:
        """``written`` bytes of the index are in the temp file."""
        self._file.grow(written)

    def done(self, verified: bool) -> None:
        """The download is over: verified (promote the hashes) or not (drop them)."""
        self._verified = verified
        self._file.end()
        self._verdict.set()

    def _run(self) -> int:
        try:
            scan = debian.hints_of(self.kind)
            count = self._storage.stage_hints(
                self._batch, scan(decompressed(self._file.chunks()), self._root))
        except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error) as exc:
            log.warning("could not parse %s index %s: %s", self.kind.value, self.url, exc)
            count = -1
        self._verdict.wait()
        if count < 0 or not self._verified:
            self._storage.drop_hints(self._batch)
            return 0
        self._storage.promote_hints(self._batch)
        log.info("learned %d file hashes from %s", count, self.url)
        return count
