"""The metered store times each request under its operation and the backend's name, failures
included, and passes everything else through to the backend."""

from __future__ import annotations

import pytest

from shipmate import metrics
from shipmate.errors import LeaseNotFoundError
from shipmate.store.base import Compare, Op
from shipmate.store.metered import OPERATIONS, MeteredStore, backend
from shipmate.testing import FakeClock, memory_store


def _counts() -> dict[str, int]:
    return {op: metrics.STORE_REQUEST_SECONDS.count(backend="sqlite", op=op)
            for op in OPERATIONS}


async def test_each_operation_is_timed_under_its_name() -> None:
    store = MeteredStore(await memory_store(FakeClock()))
    try:
        before = _counts()
        await store.put("/a", "1")
        await store.get("/a")
        await store.range("/")
        await store.txn([Compare.missing("/b")], [Op.put("/b", "2")])
        assert await store.create("/c", "3")  # the base's helper: one txn
        await store.revision()
        watch = await store.watch("/")
        await watch.close()
        lease = await store.grant(10)
        await store.keepalive(lease)
        await store.time_to_live(lease)
        await store.revoke(lease)
        await store.delete("/a")
        await store.compact(await store.revision())
        after = _counts()
        grew = {op: after[op] - before[op] for op in OPERATIONS}
        assert grew == {**dict.fromkeys(OPERATIONS, 1), "txn": 2, "revision": 2}
        assert 'shipmate_store_request_duration_seconds_bucket{backend="sqlite",op="get",le=' \
            in metrics.REGISTRY.render()
    finally:
        await store.close()


async def test_a_failed_request_is_timed_too_and_raises_as_before() -> None:
    store = MeteredStore(await memory_store(FakeClock()))
    try:
        before = metrics.STORE_REQUEST_SECONDS.count(backend="sqlite", op="keepalive")
        with pytest.raises(LeaseNotFoundError):
            await store.keepalive(12345)
        assert metrics.STORE_REQUEST_SECONDS.count(backend="sqlite", op="keepalive") \
            == before + 1
    finally:
        await store.close()


async def test_the_backends_own_attributes_reach_through() -> None:
    inner = await memory_store(FakeClock())
    store = MeteredStore(inner)
    try:
        assert store.name == "sqlite"
        assert store.path == inner.path
        with pytest.raises(AttributeError):
            _ = store.no_such_attribute
    finally:
        await store.close()


async def test_backend_sees_through_the_meter_for_type_checks() -> None:
    inner = await memory_store(FakeClock())
    try:
        assert backend(MeteredStore(inner)) is inner  # e.g. the cluster routes' EtcdStore check
        assert backend(inner) is inner
    finally:
        await inner.close()
