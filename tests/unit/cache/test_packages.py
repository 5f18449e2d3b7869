"""Streaming Packages parsing: bounded decompression, a file read as it grows, staged hints."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from shipmate.cache import debian, packages
from shipmate.cache.hits import Small, SmallBodies
from shipmate.cache.storage import Storage

STANZA = ("Package: p{n}\nFilename: pool/main/p/p{n}/p{n}_1_amd64.deb\nSize: 1\n"
          "SHA256: {d}\n\n")


def index(count: int) -> bytes:
    return "".join(STANZA.format(n=n, d=f"{n:064x}") for n in range(count)).encode()


def _plain(raw: bytes) -> bytes:
    return raw


@pytest.mark.parametrize("compress", [lzma.compress, gzip.compress, bz2.compress, _plain])
def test_decompressed_in_bounded_pieces(compress: Callable[[bytes], bytes]) -> None:
    raw = index(20_000)  # ~2.3 MB that compresses a lot: one input chunk is many output pieces
    blob = compress(raw)
    chunks = [blob[i:i + 4096] for i in range(0, len(blob), 4096)]
    pieces = list(packages.decompressed(chunks))
    assert b"".join(pieces) == raw
    assert max(len(p) for p in pieces) <= max(packages.OUT, 4096)


def test_growing_file_follows_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    grown = packages.GrowingFile(fd)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.extend(grown.chunks()))
    reader.start()
    written = 0
    for n in range(50):
        written += os.write(fd, bytes([n]) * 10_000)
        grown.grow(written)
    grown.end()
    reader.join(10)
    os.close(fd)
    assert b"".join(got) == b"".join(bytes([n]) * 10_000 for n in range(50))


def test_staged_hints_are_invisible_until_promoted(tmp_path: Path) -> None:
    s = Storage(tmp_path, 1 << 30)
    s.open()
    root = "http://deb.example/debian/"
    url = root + "pool/main/p/p7/p7_1_amd64.deb"
    hints = debian.packages_hints(packages.decompressed([lzma.compress(index(10))]), root)
    assert s.stage_hints("b1", hints) == 10
    assert s.hint(url) is None
    s.promote_hints("b1")
    assert s.hint(url) == ("sha256", f"{7:064x}")
    s.stage_hints("b2", [(url, "sha256", "ff" * 32)])
    s.drop_hints("b2")  # an index that failed verification changes nothing
    assert s.hint(url) == ("sha256", f"{7:064x}")
    s.close()


def test_small_bodies_are_bounded_and_keyed_by_hash() -> None:
    memo = SmallBodies(total=250)
    for n in range(5):
        memo.put(f"k{n}", Small(f"h{n}", bytes(100), "e", "lm"))
    assert memo.size <= 250
    assert memo.get("k0", "h0") is None and memo.get("k4", "h4") is not None
    assert memo.get("k4", "other") is None  # a replaced body is not served from memory
    memo.discard("k4")
    assert memo.get("k4", "h4") is None and memo.size == 100
