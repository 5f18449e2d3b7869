"""The ``store`` fixture: every contract test runs on both backends.

- ``sqlite``: an in-memory :class:`~shipmate.store.sqlite.SqliteStore` on a FakeClock;
- ``etcd``: :class:`~shipmate.store.etcd.EtcdStore` on the session's real etcd, with a key
  prefix unique to the test.

Lease tests use :class:`LeaseTime`: fake time for SQLite, real short TTLs for etcd (whose
minimum TTL is 2 s).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from shipmate.store.base import Event, Store, Watch
from shipmate.testing import FakeClock, memory_store


@pytest.fixture
def clock() -> FakeClock:
    """The fake clock the SQLite store runs on."""
    return FakeClock()


@pytest.fixture(params=["sqlite", "etcd"])
async def store(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Store]:
    """A fresh, empty store of each backend."""
    if request.param == "sqlite":
        backend: Store = await memory_store(clock)
    else:
        etcd = pytest.importorskip(
            "shipmate.store.etcd", reason="shipmate.store.etcd not written yet")
        server = request.getfixturevalue("etcd_server")
        prefix = request.getfixturevalue("etcd_prefix")
        backend = await etcd.EtcdStore.connect([server.endpoint], prefix=prefix)
    try:
        yield backend
    finally:
        await backend.close()


@dataclasses.dataclass
class LeaseTime:
    """How lease tests make time pass on a backend."""

    ttl: float
    clock: FakeClock | None  # None: real time

    async def elapse(self, seconds: float) -> None:
        """Let ``seconds`` pass for the store's leases."""
        if self.clock is not None:
            await self.clock.advance(seconds)
        else:
            await asyncio.sleep(seconds)


@pytest.fixture
def lease_time(store: Store, clock: FakeClock) -> LeaseTime:
    """Fake time (TTL 10 s) for SQLite; real time (TTL 3 s) for etcd."""
    if store.name == "sqlite":
        return LeaseTime(ttl=10.0, clock=clock)
    return LeaseTime(ttl=3.0, clock=None)


async def next_event(watch: Watch, timeout: float = 10.0) -> Event:
    """The watch's next event, failing the test after ``timeout`` seconds."""
    return await asyncio.wait_for(anext(watch), timeout)


async def events_until(watch: Watch, revision: int, timeout: float = 10.0) -> list[Event]:
    """Events from ``watch`` up to and including the last one at ``revision``."""
    out: list[Event] = []

    async def collect() -> None:
        while not out or out[-1].revision < revision:
            out.append(await anext(watch))

    await asyncio.wait_for(collect(), timeout)
    return out


async def no_event(watch: Watch, wait: float = 0.3) -> bool:
    """True when nothing more arrives on ``watch`` within ``wait`` seconds."""
    try:
        await asyncio.wait_for(anext(watch), wait)
    except TimeoutError:
        return True
    return False
