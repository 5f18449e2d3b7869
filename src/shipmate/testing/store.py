"""An in-memory store for unit tests: the real SQLite backend on ``:memory:``."""

from __future__ import annotations

from shipmate.clock import Clock
from shipmate.store.sqlite import SqliteStore


async def memory_store(clock: Clock | None = None) -> SqliteStore:
    """A fresh, private, in-memory :class:`~shipmate.store.sqlite.SqliteStore`.

    Pass a :class:`~shipmate.testing.FakeClock` to drive lease expiry from the test. Close it
    with ``await store.close()`` (or ``async with``) when done.
    """
    return await SqliteStore.open(":memory:", clock=clock)
