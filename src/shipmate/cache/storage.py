"""Cache storage: bodies on disk, metadata in SQLite, hints (hashes promised by indexes).

A body is written to ``tmp/``, fsynced, then renamed into ``data/`` (and the directory
fsynced), so ``data/`` only ever holds complete, verified bodies. The metadata index lives in
memory for lookups on the hot path and in SQLite for restarts; access times are written back
in batches. A size cap evicts least-recently-used bodies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

from shipmate.cache.mirrors import Hint

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
  key TEXT PRIMARY KEY, url TEXT NOT NULL, fmt TEXT NOT NULL, kind TEXT NOT NULL,
  size INTEGER NOT NULL, sha256 TEXT NOT NULL, content_type TEXT NOT NULL,
  etag TEXT, last_modified TEXT, fetched_at REAL NOT NULL, accessed_at REAL NOT NULL
);
"""
# Hints live in their own database: bulk loads of a Packages index (tens of thousands of rows,
# from a thread) must never make the event loop wait for the entries database's write lock.
_HINTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS hints (
  url TEXT PRIMARY KEY, algo TEXT NOT NULL, digest TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS staged (
  batch TEXT NOT NULL, url TEXT NOT NULL, algo TEXT NOT NULL, digest TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS staged_batch ON staged (batch);
DELETE FROM staged;
"""
_HINT_BATCH = 5000
_COLUMNS = ("key", "url", "fmt", "kind", "size", "sha256", "content_type", "etag",
            "last_modified", "fetched_at", "accessed_at")
# Built from the constant above, never from input.
_SELECT = f"SELECT {','.join(_COLUMNS)} FROM entries"  # noqa: S608
_MARKS = ",".join("?" * len(_COLUMNS))
_INSERT = f"INSERT OR REPLACE INTO entries ({','.join(_COLUMNS)}) VALUES ({_MARKS})"  # noqa: S608


@dataclasses.dataclass
class Entry:
    """Metadata of one cached body."""

    key: str
    url: str
    fmt: str
    kind: str
    size: int
    sha256: str
    content_type: str
    etag: str | None
    last_modified: str | None
    fetched_at: float  # wall clock: last download or successful revalidation
    accessed_at: float  # wall clock: last time served (LRU)

    @property
    def name(self) -> str:
        """File name under ``data/``: the SHA-256 of the key."""
        return hashlib.sha256(self.key.encode()).hexdigest()


def http_date_to_epoch(value: str | None) -> float | None:
    """Parse an HTTP date (``Last-Modified``); None when absent or malformed."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


class Storage:
    """The cache directory: ``data/``, ``tmp/`` and ``index.sqlite``."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.data = self.root / "data"
        self.tmp = self.root / "tmp"
        self._entries: dict[str, Entry] = {}
        self._dirty: set[str] = set()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._hints_db: sqlite3.Connection | None = None
        self._hints_lock = threading.Lock()
        self.total_bytes = 0

    # -- lifecycle -----------------------------------------------------------------------------
    def open(self) -> None:
        """Create the directories and load the index."""
        self.data.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._db = self._connect("index.sqlite")
        self._db.executescript(_SCHEMA)
        self._hints_db = self._connect("hints.sqlite")
        self._hints_db.executescript(_HINTS_SCHEMA)
        rows = self._db.execute(_SELECT).fetchall()
        self._entries = {r[0]: Entry(*r) for r in rows}
        self.total_bytes = sum(e.size for e in self._entries.values())

    def _connect(self, name: str) -> sqlite3.Connection:
        db = sqlite3.connect(self.root / name, timeout=30, check_same_thread=False,
                             isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def close(self) -> None:
        """Write pending access times and close the index."""
        if self._db is not None:
            self.flush()
            self._db.close()
            self._db = None
        if self._hints_db is not None:
            self._hints_db.close()
            self._hints_db = None

    @property
    def db(self) -> sqlite3.Connection:
        """The open index (``open()`` first)."""
        if self._db is None:
            raise RuntimeError("storage is not open")
        return self._db

    # -- lookups -------------------------------------------------------------------------------
    def get(self, key: str) -> Entry | None:
        """The entry for ``key``, if cached."""
        return self._entries.get(key)

    def entries(self) -> list[Entry]:
        """All entries (a copy)."""
        return list(self._entries.values())

    def path(self, entry: Entry) -> Path:
        """Where ``entry``'s body is."""
        name = entry.name
        return self.data / name[:2] / name

    def touch(self, entry: Entry, now: float | None = None) -> None:
        """Mark ``entry`` used (for LRU); written to SQLite by :meth:`flush`."""
        entry.accessed_at = time.time() if now is None else now
        self._dirty.add(entry.key)

    def flush(self) -> None:
        """Write batched access times."""
        rows = [(self._entries[k].accessed_at, k) for k in self._dirty if k in self._entries]
        self._dirty.clear()
        if rows:
            with self._lock:
                self.db.executemany("UPDATE entries SET accessed_at=? WHERE key=?", rows)

    # -- writing -------------------------------------------------------------------------------
    def new_temp(self) -> tuple[int, Path]:
        """An open, empty temporary file under ``tmp/`` (fd, path)."""
        fd, name = tempfile.mkstemp(prefix="dl-", dir=self.tmp)
        return fd, Path(name)

    def finish_file(self, fd: int, tmp: Path, entry: Entry) -> None:
        """fsync and close ``fd``, set the mtime to upstream's Last-Modified, rename ``tmp`` into
        place and fsync the directory. Blocking: run it in a thread."""
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        mtime = http_date_to_epoch(entry.last_modified)
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
        dest = self.path(entry)
        dest.parent.mkdir(exist_ok=True)
        os.replace(tmp, dest)
        dirfd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)

    def record(self, entry: Entry) -> list[Entry]:
        """Index a body :meth:`finish_file` put in place; returns what was evicted for room."""
        old = self._entries.get(entry.key)
        if old is not None:
            self.total_bytes -= old.size
        self._entries[entry.key] = entry
        self.total_bytes += entry.size
        values = tuple(getattr(entry, c) for c in _COLUMNS)
        with self._lock:
            self.db.execute(_INSERT, values)
        return self.evict(keep=entry.key)

    def refreshed(self, key: str, fetched_at: float) -> None:
        """Upstream confirmed ``key`` unchanged (304)."""
        entry = self._entries.get(key)
        if entry is not None:
            entry.fetched_at = fetched_at
            with self._lock:
                self.db.execute("UPDATE entries SET fetched_at=? WHERE key=?", (fetched_at, key))

    def remove(self, key: str) -> Entry | None:
        """Forget ``key`` and delete its body."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        self.total_bytes -= entry.size
        self._dirty.discard(key)
        with self._lock:
            self.db.execute("DELETE FROM entries WHERE key=?", (key,))
        with contextlib.suppress(FileNotFoundError):
            self.path(entry).unlink()
        return entry

    def evict(self, keep: str | None = None) -> list[Entry]:
        """Remove least-recently-used entries until under the cap (down to 90% of it, so
        eviction runs in batches rather than on every insert)."""
        if self.total_bytes <= self.max_bytes:
            return []
        goal = int(self.max_bytes * 0.9)
        evicted = []
        for entry in sorted(self._entries.values(), key=lambda e: e.accessed_at):
            if self.total_bytes <= goal:
                break
            if entry.key != keep:
                self.remove(entry.key)
                evicted.append(entry)
        return evicted

    # -- hints ---------------------------------------------------------------------------------
    def add_hints(self, hints: Iterable[Hint]) -> int:
        """Remember hashes promised by an index. Blocking (run it in a thread): writes in
        batches on its own connection so lookups keep going."""
        sql = "INSERT OR REPLACE INTO hints (url, algo, digest) VALUES (?,?,?)"
        return self._write_batches(sql, hints, lambda h: h)

    def replace_hints(self, prefixes: list[str], hints: list[Hint]) -> None:
        """Forget every hint for a URL under one of ``prefixes``, then remember ``hints``, in
        one transaction: what a new Release file promises for its suite's indexes replaces
        what the last one did, so a file it no longer lists keeps no stale hash. Blocking."""
        with self._hints_transaction() as db:
            for prefix in prefixes:
                end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
                db.execute("DELETE FROM hints WHERE url >= ? AND url < ?", (prefix, end))
            db.executemany("INSERT OR REPLACE INTO hints (url, algo, digest) VALUES (?,?,?)",
                           hints)

    def stage_hints(self, batch: str, hints: Iterable[Hint]) -> int:
        """Write hashes of an index still being verified, invisible to :meth:`hint` until
        :meth:`promote_hints`. Blocking; short transactions, so other writers are not held up
        for the length of a download."""
        sql = "INSERT INTO staged (batch, url, algo, digest) VALUES (?,?,?,?)"
        return self._write_batches(sql, hints, lambda h: (batch, *h))

    def promote_hints(self, batch: str) -> None:
        """Make a staged batch hints (its index was verified). Blocking."""
        with self._hints_transaction() as db:
            db.execute("INSERT OR REPLACE INTO hints (url, algo, digest) "
                       "SELECT url, algo, digest FROM staged WHERE batch=?", (batch,))
            db.execute("DELETE FROM staged WHERE batch=?", (batch,))

    def drop_hints(self, batch: str) -> None:
        """Forget a staged batch (its index failed). Blocking."""
        with self._hints_transaction() as db:
            db.execute("DELETE FROM staged WHERE batch=?", (batch,))

    @contextlib.contextmanager
    def _hints_transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction on a connection of its own (writers run in threads)."""
        db = self._connect("hints.sqlite")
        try:
            db.execute("BEGIN")
            yield db
            db.execute("COMMIT")
        finally:
            db.close()

    def _write_batches(self, sql: str, rows: Iterable[Hint],
                       shape: Callable[[Hint], tuple[str, ...]]) -> int:
        """``rows`` in transactions of :data:`_HINT_BATCH` rows; the count written."""
        count = 0
        shaped = map(shape, rows)
        while batch := list(itertools.islice(shaped, _HINT_BATCH)):
            with self._hints_transaction() as db:
                db.executemany(sql, batch)
            count += len(batch)
        return count

    def hint(self, url: str) -> tuple[str, str] | None:
        """``(algo, hex digest)`` an index promised for ``url`` (a read: never waits on the
        writer, thanks to WAL)."""
        if self._hints_db is None:
            raise RuntimeError("storage is not open")
        with self._hints_lock:
            row = self._hints_db.execute(
                "SELECT algo, digest FROM hints WHERE url=?", (url,)).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    # -- maintenance ---------------------------------------------------------------------------
    def gc(self, active: set[Path] | None = None) -> dict[str, int]:
        """Drop leftover temp files (except ``active`` ones), entries whose body is missing or
        of the wrong size, bodies no entry names; then enforce the cap."""
        report = {"temp_files": 0, "broken_entries": 0, "orphan_files": 0, "evicted": 0}
        for p in self.tmp.iterdir():
            if p not in (active or set()):
                p.unlink(missing_ok=True)
                report["temp_files"] += 1
        names = set()
        for entry in self.entries():
            try:
                ok = self.path(entry).stat().st_size == entry.size
            except FileNotFoundError:
                ok = False
            if ok:
                names.add(entry.name)
            else:
                self.remove(entry.key)
                report["broken_entries"] += 1
        for sub in self.data.iterdir():
            for p in sub.iterdir() if sub.is_dir() else ():
                if p.name not in names:
                    p.unlink(missing_ok=True)
                    report["orphan_files"] += 1
        report["evicted"] = len(self.evict())
        self.flush()
        return report
