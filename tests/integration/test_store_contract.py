"""The store contract (:mod:`tests.contract.store`) on a real etcd: the session's server, a
key prefix of the test's own. Leases run on real time with short TTLs (etcd's minimum TTL
is 2 s)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shipmate.store.base import Store
from shipmate.store.etcd import EtcdStore
from tests.conftest import EtcdServer
from tests.contract.store import *  # noqa: F403 - the suite's test functions
from tests.contract.store_helpers import LeaseTime

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(etcd_server: EtcdServer, etcd_prefix: str) -> AsyncIterator[Store]:
    """An EtcdStore confined to a prefix of this test's own."""
    backend = await EtcdStore.connect([etcd_server.endpoint], prefix=etcd_prefix)
    try:
        yield backend
    finally:
        await backend.close()


@pytest.fixture
def lease_time() -> LeaseTime:
    """Real time, TTL 3 s."""
    return LeaseTime(ttl=3.0, clock=None)
