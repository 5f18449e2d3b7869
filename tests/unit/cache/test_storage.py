"""Storage: atomic commit, index persistence, LRU cap, gc, hints."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from shipmate.cache.storage import Entry, Storage, http_date_to_epoch


def put(storage: Storage, key: str, body: bytes, accessed: float = 1.0) -> Entry:
    fd, tmp = storage.new_temp()
    os.write(fd, body)
    entry = Entry(key, key, "apt", "immutable", len(body), hashlib.sha256(body).hexdigest(),
                  "application/octet-stream", '"e"', "Sat, 01 Jun 2024 00:00:00 GMT",
                  1.0, accessed)
    storage.finish_file(fd, tmp, entry)
    storage.record(entry)
    return entry


def test_commit_is_atomic_and_persisted(tmp_path: Path) -> None:
    s = Storage(tmp_path, 10_000)
    s.open()
    e = put(s, "http://h/a.deb", b"hello")
    assert s.path(e).read_bytes() == b"hello"
    assert list(s.tmp.iterdir()) == []
    assert s.path(e).stat().st_mtime == http_date_to_epoch("Sat, 01 Jun 2024 00:00:00 GMT")
    s.touch(e, 50.0)
    s.close()
    again = Storage(tmp_path, 10_000)
    again.open()
    got = again.get("http://h/a.deb")
    assert got is not None and got.size == 5 and got.accessed_at == 50.0
    assert again.total_bytes == 5
    again.close()


def test_lru_eviction(tmp_path: Path) -> None:
    s = Storage(tmp_path, 300)
    s.open()
    a = put(s, "a", b"a" * 100, accessed=1)
    put(s, "b", b"b" * 100, accessed=2)
    put(s, "c", b"c" * 100, accessed=3)
    s.touch(a, 10)  # a is now the most recent
    put(s, "d", b"d" * 100, accessed=11)
    assert s.get("b") is None and s.get("a") is not None and s.get("d") is not None
    assert s.total_bytes <= 300
    s.close()


def test_replacing_an_entry_keeps_totals(tmp_path: Path) -> None:
    s = Storage(tmp_path, 1000)
    s.open()
    put(s, "k", b"x" * 100)
    e = put(s, "k", b"y" * 40)
    assert s.total_bytes == 40 and s.path(e).read_bytes() == b"y" * 40
    s.close()


def test_gc(tmp_path: Path) -> None:
    s = Storage(tmp_path, 1000)
    s.open()
    good = put(s, "good", b"g" * 10)
    bad = put(s, "bad", b"b" * 10)
    s.path(bad).write_bytes(b"short")
    (s.data / "zz").mkdir()
    (s.data / "zz" / "orphan").write_bytes(b"?")
    fd, leftover = s.new_temp()
    os.close(fd)
    fd, active = s.new_temp()
    os.close(fd)
    report = s.gc(active={active})
    assert report == {"temp_files": 1, "broken_entries": 1, "orphan_files": 1, "evicted": 0}
    assert not leftover.exists() and active.exists()
    assert s.get("good") == good and s.get("bad") is None
    s.close()


def test_hints(tmp_path: Path) -> None:
    s = Storage(tmp_path, 1000)
    s.open()
    assert s.add_hints(iter([("u1", "sha256", "aa"), ("u2", "sha512", "bb")])) == 2
    s.add_hints([("u1", "sha256", "cc")])
    assert s.hint("u1") == ("sha256", "cc") and s.hint("u3") is None
    s.close()


def test_a_release_replaces_the_hints_of_its_components(tmp_path: Path) -> None:
    s = Storage(tmp_path, 1000)
    s.open()
    suite = "http://d/debian/dists/bookworm/"
    s.add_hints([(suite + "main/binary-amd64/Packages.xz", "sha256", "old"),
                 (suite + "main/i18n/Translation-en.bz2", "sha256", "dropped"),
                 ("http://d/debian/dists/bookworm-updates/main/Sources.xz", "sha256", "kept"),
                 (suite + "updates/main/Sources.xz", "sha256", "nested"),
                 ("http://d/debian/pool/main/h/hello.deb", "sha256", "kept")])
    s.replace_hints([suite + "main/"], [(suite + "main/binary-amd64/Packages.xz", "sha256",
                                         "new")])
    assert s.hint(suite + "main/binary-amd64/Packages.xz") == ("sha256", "new")
    assert s.hint(suite + "main/i18n/Translation-en.bz2") is None  # no longer listed
    assert s.hint("http://d/debian/dists/bookworm-updates/main/Sources.xz") == ("sha256", "kept")
    assert s.hint("http://d/debian/pool/main/h/hello.deb") == ("sha256", "kept")
    assert s.hint(suite + "updates/main/Sources.xz") == ("sha256", "nested")  # another suite
    s.close()
