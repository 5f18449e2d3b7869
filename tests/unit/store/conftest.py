"""The ``store`` fixture of the SQLite store's tests: an in-memory
:class:`~shipmate.store.sqlite.SqliteStore` on a FakeClock, bare and wrapped in the
:class:`~shipmate.store.metered.MeteredStore` the daemon uses. The same contract suite runs on
etcd in ``tests/integration/test_store_contract.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shipmate.store.base import Store
from shipmate.store.metered import MeteredStore
from shipmate.testing import FakeClock, memory_store
from tests.contract.store_helpers import LeaseTime


@pytest.fixture
def clock() -> FakeClock:
    """The fake clock the SQLite store runs on."""
    return FakeClock()


@pytest.fixture(params=["sqlite", "metered"])
async def store(clock: FakeClock, request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """A fresh, empty in-memory SQLite store (timed, as the daemon opens it, or bare)."""
    backend: Store = await memory_store(clock)
    if request.param == "metered":
        backend = MeteredStore(backend)
    try:
        yield backend
    finally:
        await backend.close()


@pytest.fixture
def lease_time(clock: FakeClock) -> LeaseTime:
    """Leases on fake time (TTL 10 s)."""
    return LeaseTime(ttl=10.0, clock=clock)
