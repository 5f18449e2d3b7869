"""SQLite-specific behaviour: persistence, restart, locking, watch hand-over under stress."""

from __future__ import annotations

import asyncio
import stat
import time
from pathlib import Path

import pytest

from shipmate.errors import CompactedError, StoreError, ValidationError
from shipmate.store import sqlite_watch
from shipmate.store.base import Op
from shipmate.store.sqlite import SqliteStore
from shipmate.testing import FakeClock, memory_store
from tests.contract.store_helpers import events_until, next_event


async def test_state_and_history_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state" / "store.db"  # the directory is created
    store = await SqliteStore.open(path)
    first = await store.put("/a", "1")
    await store.put("/a", "2")
    await store.put("/b", "x")
    await store.delete("/b")
    await store.compact(first + 1)
    rev = await store.revision()
    await store.close()

    store = await SqliteStore.open(path)
    try:
        assert await store.revision() == rev
        kv = await store.get("/a")
        assert kv is not None
        assert (kv.value, kv.version, kv.create_revision) == (b"2", 2, first)
        assert await store.get("/b") is None
        async with await store.watch("/", start_revision=first + 1) as watch:
            events = await events_until(watch, rev)
        assert [(e.type, e.kv.key) for e in events] == [
            ("put", "/a"), ("put", "/b"), ("delete", "/b")]
        with pytest.raises(CompactedError):
            await store.watch("/", start_revision=first)
        assert await store.put("/c", "y") == rev + 1  # revisions continue
    finally:
        await store.close()


async def test_leases_survive_reopen_with_a_fresh_ttl(tmp_path: Path) -> None:
    clock = FakeClock()
    store = await SqliteStore.open(tmp_path / "s.db", clock=clock)
    lease = await store.grant(10)
    await store.put("/l", "x", lease=lease)
    await clock.advance(9)  # nearly expired when the daemon stops
    await store.close()

    clock = FakeClock(start=5.0)  # a monotonic clock restarts from anything
    store = await SqliteStore.open(tmp_path / "s.db", clock=clock)
    try:
        assert await store.time_to_live(lease) == pytest.approx(10)
        assert await store.get("/l") is not None
        assert lease != await store.grant(5)  # IDs are never reused
        watch = await store.watch("/l")
        await clock.advance(10.5)
        event = await next_event(watch, 5)
        assert (event.type, event.kv.key) == ("delete", "/l")
        await watch.close()
    finally:
        await store.close()


async def test_second_open_of_the_same_file_is_refused(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "s.db")
    try:
        with pytest.raises(StoreError, match="in use by another process"):
            await SqliteStore.open(tmp_path / "s.db")
    finally:
        await store.close()
    again = await SqliteStore.open(tmp_path / "s.db")  # the lock is released on close
    await again.close()


async def test_database_file_is_private(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "s.db")
    await store.put("/secret", "x")
    await store.close()
    assert stat.S_IMODE((tmp_path / "s.db").stat().st_mode) == 0o600


async def test_closed_store_raises_store_error() -> None:
    store = await memory_store()
    watch = await store.watch("/")
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.get("/a")
    with pytest.raises(StopAsyncIteration):
        await anext(watch)
    await store.close()  # idempotent


async def test_unopened_file_path_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError):
        await SqliteStore.open(tmp_path / "file" / "store.db")


async def test_events_carry_the_previous_value() -> None:
    async with await memory_store() as store:
        start = await store.put("/p", "1")
        await store.put("/p", "2")
        await store.delete("/p")
        async with await store.watch("/", start_revision=start) as watch:
            events = [await next_event(watch) for _ in range(3)]
    assert [None if e.prev_kv is None else e.prev_kv.value for e in events] == [None, b"1", b"2"]


async def test_txn_refuses_what_etcd_refuses() -> None:
    async with await memory_store() as store:
        with pytest.raises(ValidationError):
            await store.txn([], [Op.put("/a", "1"), Op.put("/a", "2")])
        with pytest.raises(ValidationError):
            await store.txn([], [Op.put("/a/b", "1"), Op.delete("/a/", prefix=True)])
        with pytest.raises(ValidationError):
            await store.compact(await store.revision() + 1)
        with pytest.raises(ValidationError):
            await store.grant(0)
        assert await store.get("/a") is None  # nothing half-applied


async def test_watch_hand_over_stress() -> None:
    """Open a watch while writes are queued behind its history read, many times over."""
    async with await memory_store() as store:
        for round_ in range(30):
            start = await store.put("/h/start", str(round_))
            before = [asyncio.create_task(store.put(f"/h/{i}", "b")) for i in range(5)]
            opening = asyncio.create_task(store.watch("/h/", start_revision=start))
            await asyncio.sleep(0)  # the watch queues its history read
            after = [asyncio.create_task(store.put(f"/h/{i}", "a")) for i in range(5)]
            revs = sorted(await asyncio.gather(*before, *after))
            async with await opening as watch:
                got = [e.revision for e in await events_until(watch, revs[-1], 5)]
            assert got == [start, *revs]


async def test_slow_consumer_falls_back_to_history(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_watch, "MAX_QUEUED", 5)
    monkeypatch.setattr(sqlite_watch, "PAGE", 7)
    async with await memory_store() as store:
        watch = await store.watch("/s/")
        revs = [await store.put(f"/s/{i % 3}", str(i)) for i in range(40)]
        got = await events_until(watch, revs[-1])
        assert [(e.revision, e.kv.value) for e in got] == [
            (r, str(i).encode()) for i, r in enumerate(revs)]
        more = await store.put("/s/x", "live")  # and it is live again
        assert (await next_event(watch)).revision == more
        await watch.close()


async def test_slow_consumer_after_compaction_gets_compacted_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sqlite_watch, "MAX_QUEUED", 3)
    async with await memory_store() as store:
        watch = await store.watch("/s/")
        first = await store.put("/s/a", "0")
        assert (await next_event(watch)).revision == first
        for i in range(10):
            last = await store.put("/s/a", str(i))
        await store.compact(last)
        with pytest.raises(CompactedError):
            await next_event(watch)


async def test_event_loop_keeps_running_during_durable_writes(tmp_path: Path) -> None:
    """fsyncs happen on the worker thread: a ticker on the loop is never held up long."""
    store = await SqliteStore.open(tmp_path / "s.db")
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    try:
        await asyncio.gather(*(store.put(f"/k/{i}", "x" * 1000) for i in range(100)))
    finally:
        stop.set()
        await tick
        await store.close()
    assert len(gaps) > 10
    # most ticks come on time; a single long gap is the machine (other processes), not fsync
    # on the loop, which would hold up every tick taken while the writes go on
    assert sorted(gaps)[len(gaps) * 9 // 10] < 0.05, sorted(gaps)[-5:]
