"""The embedded store: SQLite in WAL mode, for one daemon on one host (the default backend).

All database access runs on one dedicated worker thread, so the event loop never blocks on an
fsync and the database needs no locking of its own: the thread serialises every read and write,
which also gives watches a clean hand-over point (see :mod:`shipmate.store.sqlite_watch`).
Durability: ``synchronous=FULL``, every write is committed and fsynced before its coroutine
returns. Lease deadlines are kept in memory on the injected clock; on reopen every surviving
lease gets a fresh full TTL, as etcd does after a leader change.

``SqliteStore.open(":memory:")`` gives a private in-memory store for tests
(:func:`shipmate.testing.store.memory_store`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, TypeVar

from shipmate.clock import Clock, SystemClock
from shipmate.errors import LeaseNotFoundError, ShipmateError, StoreError, ValidationError
from shipmate.store.base import Compare, Event, KeyValue, Op, Store, TxnResult, Watch
from shipmate.store.sqlite_db import SqliteDb
from shipmate.store.sqlite_watch import WatchHub, open_watch

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_EXPIRY = 1.0  # seconds before retrying a lease expiry that failed to commit


@contextlib.contextmanager
def _map_errors(path: str) -> Iterator[None]:
    """The one place where sqlite3 and OS errors become :class:`StoreError`."""
    try:
        yield
    except ShipmateError:
        raise
    except sqlite3.Error as exc:
        raise StoreError(f"sqlite store {path}: {exc}",
                         hint="check the disk (space, permissions) under the state directory"
                         ) from exc
    except OSError as exc:
        raise StoreError(f"sqlite store {path}: {exc}",
                         hint="check that the state directory exists and is writable") from exc


class SqliteStore(Store):
    """:class:`~shipmate.store.base.Store` on a SQLite file (or ``":memory:"``).

    Create with ``await SqliteStore.open(path)``; one process at a time may open a file.
    """

    name = "sqlite"
    max_txn_ops = 30_000  # no limit of its own; a bound keeps one commit (and the loop) short

    def __init__(self, path: str | Path, *, clock: Clock | None = None) -> None:
        self.path = str(path)
        self._clock: Clock = clock or SystemClock()
        self._hub = WatchHub()
        self._leases: dict[int, tuple[float, float]] = {}  # id -> (ttl, deadline)
        self._db: SqliteDb | None = None
        self._lock_file: IO[bytes] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._expiry: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    async def open(cls, path: str | Path, *, clock: Clock | None = None) -> SqliteStore:
        """Open (creating if needed) the store at ``path`` and start its lease expiry task."""
        store = cls(path, clock=clock)
        await store._open()
        return store

    async def _open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="shipmate-sqlite")
        self._wake = asyncio.Event()
        try:
            await self._call(self._connect)
            now = self._clock.now()
            ttls = await self._call(self._database().leases)
        except BaseException:
            await self.close()
            raise
        self._leases = {lease: (ttl, now + ttl) for lease, ttl in ttls.items()}
        self._expiry = asyncio.create_task(self._expire_loop(), name="sqlite-lease-expiry")

    def _connect(self) -> None:
        """Worker thread: lock the file against a second process, then open the database."""
        if self.path != ":memory:":
            path = Path(self.path)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(f"{path}.lock", "wb")  # noqa: SIM115 - held while open
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreError(f"sqlite store {path} is in use by another process",
                                 hint="stop the other shipmate daemon using this state directory"
                                 ) from None
            # Created owner-only: values may hold config vars; SQLite gives -wal/-shm the same mode.
            os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        self._db = SqliteDb(self.path)

    def _disconnect(self) -> None:
        """Worker thread: close the database, then release the file lock."""
        if self._db is not None:
            self._db.close()
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock

    def _database(self) -> SqliteDb:
        if self._db is None or self._closed:
            raise StoreError(f"sqlite store {self.path} is closed",
                             hint="open the store again with SqliteStore.open")
        return self._db

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` on the worker thread."""
        if self._closed:
            raise StoreError(f"sqlite store {self.path} is closed",
                             hint="open the store again with SqliteStore.open")
        if self._executor is None or self._loop is None:
            raise StoreError(f"sqlite store {self.path} is not open",
                             hint="create it with await SqliteStore.open(path)")
        with _map_errors(self.path):
            return await self._loop.run_in_executor(self._executor, fn, *args)

    def _publish(self, revision: int, events: list[Event]) -> None:
        """Worker thread, right after a commit: hand the events to the loop, in commit order."""
        if events and self._loop is not None:
            self._loop.call_soon_threadsafe(self._hub.publish, revision, events)

    def _txn_job(
        self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op]
    ) -> TxnResult:
        result, events = self._database().txn(compares, success, failure)
        self._publish(result.revision, events)
        return result

    def _revoke_job(self, lease: int) -> None:
        db = self._database()
        events = db.revoke(lease)
        self._publish(db.revision, events)

    # keys ----------------------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        """The current value of ``key``, or None."""
        return await self._call(self._database().get, key)

    async def range(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Every key under ``prefix``, sorted by key, and the revision read at."""
        return await self._call(self._database().range_at, prefix)

    async def put(self, key: str, value: bytes | str, *, lease: int = 0) -> int:
        """Write ``key``; returns the new revision once committed to disk."""
        result = await self.txn((), [Op.put(key, value, lease)])
        return result.revision

    async def delete(self, key: str, *, prefix: bool = False) -> int:
        """Delete ``key`` (or every key under the prefix); returns how many were deleted."""
        result = await self.txn((), [Op.delete(key, prefix)])
        return len(result.responses[0])

    async def txn(
        self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        """Atomically: if every compare holds, run ``success``, else ``failure``."""
        return await self._call(self._txn_job, tuple(compares), tuple(success), tuple(failure))

    async def revision(self) -> int:
        """The current store revision."""
        return await self._call(lambda: self._database().revision)

    async def compact(self, revision: int) -> None:
        """Drop history before ``revision``."""
        await self._call(self._database().compact, revision)

    async def watch(self, prefix: str, *, start_revision: int | None = None) -> Watch:
        """Watch keys under ``prefix``, from ``start_revision`` (history first) or from now."""
        if start_revision is not None and start_revision < 0:
            raise ValidationError(f"watch start revision {start_revision} is negative")
        self._database()

        async def history(p: str, after: int, page: int) -> tuple[list[Event], int, int]:
            return await self._call(self._database().history, p, after, page)

        return await open_watch(self._hub, history, prefix, start_revision, self.revision)

    # leases --------------------------------------------------------------------------------

    async def grant(self, ttl: float) -> int:
        """Create a lease living ``ttl`` seconds (on the store's clock) unless kept alive."""
        if not ttl > 0:
            raise ValidationError(f"lease TTL must be positive, not {ttl!r}")
        lease = await self._call(self._database().grant, float(ttl))
        self._leases[lease] = (float(ttl), self._clock.now() + ttl)
        if self._wake is not None:
            self._wake.set()  # the new deadline may be the earliest
        return lease

    async def keepalive(self, lease: int) -> float:
        """Refresh ``lease`` to its full TTL; raises LeaseNotFoundError if it is gone."""
        if lease not in self._leases:
            raise LeaseNotFoundError(f"lease {lease} does not exist (expired or revoked)",
                                     hint="grant a new lease and write its keys again")
        ttl = self._leases[lease][0]
        self._leases[lease] = (ttl, self._clock.now() + ttl)
        return ttl

    async def revoke(self, lease: int) -> None:
        """End ``lease`` now, deleting its keys; unknown leases are ignored."""
        self._leases.pop(lease, None)
        await self._call(self._revoke_job, lease)

    async def time_to_live(self, lease: int) -> float | None:
        """Seconds ``lease`` has left, or None if it does not exist."""
        entry = self._leases.get(lease)
        return None if entry is None else max(0.0, entry[1] - self._clock.now())

    async def _expire_loop(self) -> None:
        """Revoke leases whose deadline passed, then sleep until the next deadline."""
        while True:
            now = self._clock.now()
            for lease in [lease for lease, (_, dl) in self._leases.items() if dl <= now]:
                ttl, _ = self._leases.pop(lease)
                try:
                    await self._call(self._revoke_job, lease)
                except StoreError as exc:
                    log.warning("lease %d expired but its keys could not be deleted: %s",
                                lease, exc)
                    self._leases.setdefault(lease, (ttl, self._clock.now() + RETRY_EXPIRY))
            await self._wait_next_deadline()

    async def _wait_next_deadline(self) -> None:
        assert self._wake is not None
        self._wake.clear()
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._wake.wait())]
        if self._leases:
            deadline = min(dl for _, dl in self._leases.values())
            waiters.append(asyncio.ensure_future(self._sleep_until(deadline)))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _sleep_until(self, deadline: float) -> None:
        # the delay is taken when the task starts, not when it is created: time may have
        # moved in between (a clock advanced by a test, a busy loop), and a delay computed
        # earlier would sleep past the deadline
        await self._clock.sleep(deadline - self._clock.now())

    # lifecycle -----------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop the expiry task, end every watch and close the database."""
        if self._closed:
            return
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry
        await self._hub.close()
        if self._executor is not None and self._loop is not None:
            with contextlib.suppress(StoreError):
                await self._call(self._disconnect)
            self._executor.shutdown(wait=False)
        self._closed = True
