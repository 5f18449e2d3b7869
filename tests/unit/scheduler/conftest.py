"""Fixtures for scheduler tests: an in-memory store on a fake clock, and helpers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

import pytest

from shipmate.errors import StoreError
from shipmate.store.base import Compare, KeyValue, Op, Store, TxnResult, Watch
from shipmate.testing import FakeClock
from shipmate.testing.store import memory_store


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(clock: FakeClock) -> AsyncIterator[Store]:
    s = await memory_store(clock=clock)
    try:
        yield s
    finally:
        await s.close()


async def eventually(check: Callable[[], object], timeout: float = 5.0) -> None:
    """Poll an async or sync predicate (real time) until true, or fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


class CuttableStore(Store):
    """Delegates to a shared store; while ``cut`` is set every call fails like a partition."""

    name = "cuttable"

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.cut = False

    def _check(self) -> None:
        if self.cut:
            raise StoreError("network cut (test)")

    async def get(self, key: str) -> KeyValue | None:
        self._check()
        return await self.inner.get(key)

    async def range(self, prefix: str) -> tuple[list[KeyValue], int]:
        self._check()
        return await self.inner.range(prefix)

    async def put(self, key: str, value: bytes | str, *, lease: int = 0) -> int:
        self._check()
        return await self.inner.put(key, value, lease=lease)

    async def delete(self, key: str, *, prefix: bool = False) -> int:
        self._check()
        return await self.inner.delete(key, prefix=prefix)

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op],
                  failure: Sequence[Op] = ()) -> TxnResult:
        self._check()
        return await self.inner.txn(compares, success, failure)

    async def revision(self) -> int:
        self._check()
        return await self.inner.revision()

    async def watch(self, prefix: str, *, start_revision: int | None = None) -> Watch:
        self._check()
        return await self.inner.watch(prefix, start_revision=start_revision)

    async def compact(self, revision: int) -> None:
        self._check()
        await self.inner.compact(revision)

    async def grant(self, ttl: float) -> int:
        self._check()
        return await self.inner.grant(ttl)

    async def keepalive(self, lease: int) -> float:
        self._check()
        return await self.inner.keepalive(lease)

    async def revoke(self, lease: int) -> None:
        self._check()
        await self.inner.revoke(lease)

    async def time_to_live(self, lease: int) -> float | None:
        self._check()
        return await self.inner.time_to_live(lease)

    async def close(self) -> None:
        pass
