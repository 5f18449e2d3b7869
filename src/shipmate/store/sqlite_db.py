"""The synchronous half of the SQLite store: schema, MVCC bookkeeping, transactions.

Everything here runs on the store's single worker thread (see :mod:`shipmate.store.sqlite`),
so one connection is enough and the cached revision counters need no locks. Keys are stored as
UTF-8 ``BLOB`` so ordering and prefix ranges are byte-wise, exactly like etcd.

Tables:

- ``kv``: the current value of each live key (create/mod revision, version, lease);
- ``events``: the MVCC history, one row per change, keyed by ``(revision, seq)`` (a transaction
  writes several rows under one revision), with the previous key-value for each change;
- ``leases``: granted leases and their TTL (deadlines live in memory: they are measured on a
  monotonic clock, which means nothing after a restart);
- ``meta``: the store revision, the compact revision and the next lease ID.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from shipmate.errors import LeaseNotFoundError, ValidationError
from shipmate.store.base import Compare, Event, KeyValue, Op, TxnResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv (
    key BLOB PRIMARY KEY, value BLOB NOT NULL, create_rev INTEGER NOT NULL,
    mod_rev INTEGER NOT NULL, version INTEGER NOT NULL, lease INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_lease ON kv (lease) WHERE lease != 0;
CREATE TABLE IF NOT EXISTS events (
    revision INTEGER NOT NULL, seq INTEGER NOT NULL, deleted INTEGER NOT NULL,
    key BLOB NOT NULL, value BLOB NOT NULL, create_rev INTEGER NOT NULL,
    version INTEGER NOT NULL, lease INTEGER NOT NULL,
    prev_value BLOB, prev_create INTEGER, prev_mod INTEGER, prev_version INTEGER,
    prev_lease INTEGER,
    PRIMARY KEY (revision, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (id INTEGER PRIMARY KEY, ttl REAL NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('revision', 1), ('compact', 0), ('next_lease', 1);
"""

_KV_COLS = "key, value, create_rev, mod_rev, version, lease"
_EVENT_COLS = (
    "revision, deleted, key, value, create_rev, version, lease,"
    " prev_value, prev_create, prev_mod, prev_version, prev_lease"
)


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (etcd's rule), or
    None when there is none (empty prefix, or only 0xff bytes)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


def key_range(key: str, prefix: bool) -> tuple[str, list[bytes]]:
    """A SQL condition on column ``key`` and its parameters, for one key or a prefix."""
    raw = key.encode()
    if not prefix:
        return "key = ?", [raw]
    end = prefix_end(raw)
    if end is None:
        return "key >= ?", [raw]
    return "key >= ? AND key < ?", [raw, end]


def _kv(row: Sequence[Any]) -> KeyValue:
    return KeyValue(bytes(row[0]).decode(), bytes(row[1]), row[2], row[3], row[4], row[5])


def event_from_row(row: Sequence[Any]) -> Event:
    """Rebuild an :class:`Event` from an ``events`` row selected with ``_EVENT_COLS``."""
    rev, deleted, key, value, create, version, lease = row[:7]
    key_s = bytes(key).decode()
    kv = KeyValue(key_s, bytes(value), create, rev, version, lease)
    prev = None
    if row[7] is not None:
        prev = KeyValue(key_s, bytes(row[7]), row[8], row[9], row[10], row[11])
    return Event("delete" if deleted else "put", kv, prev)


def _compare_holds(c: Compare, kv: KeyValue | None) -> bool:
    """etcd's rule: a value compare on a missing key always fails; other targets see zeros."""
    if c.target == "value":
        if kv is None:
            return False
        if not isinstance(c.value, bytes):
            raise ValidationError(f"compare on the value of {c.key!r} needs bytes, not {c.value!r}")
        actual: int | bytes = kv.value
    else:
        if not isinstance(c.value, int):
            raise ValidationError(f"compare on the {c.target} of {c.key!r} needs an int")
        actual = 0 if kv is None else {
            "version": kv.version, "create": kv.create_revision,
            "mod": kv.mod_revision, "lease": kv.lease,
        }[c.target]
    if c.op == "==":
        return actual == c.value
    if c.op == "!=":
        return actual != c.value
    if c.op == "<":
        return actual < c.value  # type: ignore[operator]
    if c.op == ">":
        return actual > c.value  # type: ignore[operator]
    raise ValidationError(f"unknown compare operator {c.op!r}", hint="use ==, !=, < or >")


def _check_ops(ops: Sequence[Op]) -> None:
    """Refuse what etcd refuses: the same key put twice, or put and deleted, in one txn."""
    puts: set[str] = set()
    for op in ops:
        if op.kind == "put":
            if op.key in puts:
                raise ValidationError(f"key {op.key!r} is put twice in one transaction")
            puts.add(op.key)
    for op in ops:
        if op.kind == "delete":
            if not op.prefix:
                hit = [op.key] if op.key in puts else []
            else:
                hit = [k for k in puts if k.startswith(op.key)]
            if hit:
                raise ValidationError(f"key {hit[0]!r} is both put and deleted in one transaction")


_CHUNK = 500  # keys per IN (...) read


class _Puts:
    """Consecutive puts of one transaction, written with one ``executemany``."""

    def __init__(self, db: SqliteDb, rev: int, events: list[Event]) -> None:
        self.db, self.rev, self.events = db, rev, events
        self.ops: list[Op] = []

    def add(self, op: Op) -> None:
        self.ops.append(op)

    def flush(self) -> None:
        if not self.ops:
            return
        ops, self.ops = self.ops, []
        for lease in sorted({op.lease for op in ops if op.lease}):
            if not self.db.lease_exists(lease):
                raise LeaseNotFoundError(
                    f"lease {lease} does not exist (expired or revoked)",
                    hint="grant a new lease and write the key again")
        prevs = self.db.current([op.key for op in ops])
        rows = []
        for op in ops:
            prev = prevs[op.key]
            create, version = (self.rev, 1) if prev is None else (
                prev.create_revision, prev.version + 1)
            rows.append((op.key.encode(), op.value, create, self.rev, version, op.lease))
            self.events.append(Event("put", KeyValue(op.key, op.value, create, self.rev,
                                                     version, op.lease), prev))
        self.db.conn.executemany(
            f"INSERT OR REPLACE INTO kv ({_KV_COLS}) VALUES (?, ?, ?, ?, ?, ?)",  # noqa: S608
            rows)


class SqliteDb:
    """One SQLite connection and the store's MVCC logic. Not thread-safe: one thread only."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is fsynced before it returns, so an acknowledged write survives a crash
        # or power loss (NORMAL in WAL mode may lose the last commits on power loss).
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA busy_timeout=5000")
        self.conn.executescript(SCHEMA)
        self.revision = self._meta("revision")
        self.compact_revision = self._meta("compact")

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction: committed (and fsynced) on exit, rolled back on error."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def _meta(self, name: str) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return int(row[0])

    def _set_meta(self, name: str, value: int) -> None:
        self.conn.execute("UPDATE meta SET value = ? WHERE name = ?", (value, name))

    # reads ---------------------------------------------------------------------------------

    def get(self, key: str) -> KeyValue | None:
        """The current key-value of ``key``."""
        row = self.conn.execute(
            f"SELECT {_KV_COLS} FROM kv WHERE key = ?", (key.encode(),)).fetchone()  # noqa: S608
        return None if row is None else _kv(row)

    def range(self, key: str, prefix: bool = True) -> list[KeyValue]:
        """Key-values of ``key`` or of every key under it, sorted by key."""
        cond, params = key_range(key, prefix)
        rows = self.conn.execute(
            f"SELECT {_KV_COLS} FROM kv WHERE {cond} ORDER BY key", params).fetchall()  # noqa: S608
        return [_kv(r) for r in rows]

    def range_at(self, prefix: str) -> tuple[list[KeyValue], int]:
        """:meth:`range` and the revision it was read at."""
        return self.range(prefix), self.revision

    def history(self, prefix: str, after: int, page: int) -> tuple[list[Event], int, int]:
        """Events under ``prefix`` with revision > ``after``: about ``page`` of them, never
        splitting a revision. Returns them, the revision read up to and the compact revision.
        """
        cond, params = key_range(prefix, True)
        # The revision of the page-th matching event bounds the page; whole revisions only.
        row = self.conn.execute(
            f"SELECT revision FROM events WHERE revision > ? AND {cond}"  # noqa: S608
            " ORDER BY revision, seq LIMIT 1 OFFSET ?", [after, *params, page - 1]).fetchone()
        upto = self.revision if row is None else int(row[0])
        rows = self.conn.execute(
            f"SELECT {_EVENT_COLS} FROM events WHERE revision > ? AND revision <= ?"  # noqa: S608
            f" AND {cond} ORDER BY revision, seq", [after, upto, *params]).fetchall()
        return [event_from_row(r) for r in rows], upto, self.compact_revision

    # writes --------------------------------------------------------------------------------

    def txn(
        self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op]
    ) -> tuple[TxnResult, list[Event]]:
        """Run a transaction; returns its result and the events it caused (maybe none)."""
        rev = self.revision + 1
        events: list[Event] = []
        with self._write():
            current = self.current([c.key for c in compares])
            ok = all(_compare_holds(c, current[c.key]) for c in compares)
            ops = success if ok else failure
            _check_ops(ops)
            puts = _Puts(self, rev, events)
            responses: list[tuple[KeyValue, ...]] = []
            for op in ops:
                if op.kind == "put":
                    puts.add(op)
                    responses.append(())
                else:
                    puts.flush()  # a later get or delete sees the puts before it
                    responses.append(self._apply(op, rev, events))
            puts.flush()
            if events:
                self._record(rev, events)
        if events:
            self.revision = rev  # only once committed
        return TxnResult(ok, self.revision, tuple(responses)), events

    def current(self, keys: Sequence[str]) -> dict[str, KeyValue | None]:
        """The current key-values of ``keys`` (None: missing), read a chunk at a time: a
        scheduler pass compares tens of thousands of keys in one transaction."""
        found: dict[str, KeyValue | None] = dict.fromkeys(keys)
        todo = list(found)
        for start in range(0, len(todo), _CHUNK):
            chunk = [k.encode() for k in todo[start:start + _CHUNK]]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                    f"SELECT {_KV_COLS} FROM kv WHERE key IN ({marks})", chunk):  # noqa: S608
                kv = _kv(row)
                found[kv.key] = kv
        return found

    def _apply(self, op: Op, rev: int, events: list[Event]) -> tuple[KeyValue, ...]:
        if op.kind == "get":
            return tuple(self.range(op.key, op.prefix))
        if op.kind == "delete":
            gone = self.range(op.key, op.prefix)
            cond, params = key_range(op.key, op.prefix)
            self.conn.execute(f"DELETE FROM kv WHERE {cond}", params)  # noqa: S608
            events.extend(Event("delete", KeyValue(kv.key, b"", 0, rev, 0), kv) for kv in gone)
            return tuple(gone)
        raise ValidationError(f"unknown transaction operation {op.kind!r}")

    def _record(self, rev: int, events: list[Event]) -> None:
        rows = []
        for seq, ev in enumerate(events):
            p = ev.prev_kv
            rows.append((
                rev, seq, int(ev.type == "delete"), ev.kv.key.encode(), ev.kv.value,
                ev.kv.create_revision, ev.kv.version, ev.kv.lease,
                None if p is None else p.value, None if p is None else p.create_revision,
                None if p is None else p.mod_revision, None if p is None else p.version,
                None if p is None else p.lease,
            ))
        self.conn.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        self._set_meta("revision", rev)

    def compact(self, revision: int) -> None:
        """Drop history before ``revision`` (no-op if already compacted that far)."""
        if revision > self.revision:
            raise ValidationError(
                f"cannot compact at revision {revision}: the store is at {self.revision}",
                hint="compact at or below the current revision")
        if revision <= self.compact_revision:
            return
        with self._write():
            self.conn.execute("DELETE FROM events WHERE revision < ?", (revision,))
            self._set_meta("compact", revision)
        self.compact_revision = revision

    # leases --------------------------------------------------------------------------------

    def lease_exists(self, lease: int) -> bool:
        """Whether ``lease`` is granted (and not yet revoked or expired)."""
        row = self.conn.execute("SELECT 1 FROM leases WHERE id = ?", (lease,)).fetchone()
        return row is not None

    def grant(self, ttl: float) -> int:
        """Record a new lease; returns its ID."""
        with self._write():
            lease = self._meta("next_lease")
            self._set_meta("next_lease", lease + 1)
            self.conn.execute("INSERT INTO leases VALUES (?, ?)", (lease, ttl))
        return lease

    def leases(self) -> dict[int, float]:
        """Every granted lease and its TTL."""
        return {int(i): float(t) for i, t in self.conn.execute("SELECT id, ttl FROM leases")}

    def revoke(self, lease: int) -> list[Event]:
        """Delete the lease and its keys in one revision; returns the delete events."""
        rev = self.revision + 1
        with self._write():
            rows = self.conn.execute(
                f"SELECT {_KV_COLS} FROM kv WHERE lease = ? ORDER BY key",  # noqa: S608
                (lease,)).fetchall()
            events = [Event("delete", KeyValue(kv.key, b"", 0, rev, 0), kv)
                      for kv in map(_kv, rows)]
            self.conn.execute("DELETE FROM kv WHERE lease = ?", (lease,))
            self.conn.execute("DELETE FROM leases WHERE id = ?", (lease,))
            if events:
                self._record(rev, events)
        if events:
            self.revision = rev
        return events
