"""The audit trail in the (in-memory SQLite) store: numbered in order, bounded, read newest
first by blocks, followed through a watch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from shipmate.store.base import Store
from shipmate.testing.store import memory_store
from shipmate.web import eventlog
from shipmate.web.eventlog import EventLog
from shipmate.web.events import PREFIX, SEQ_KEY, AuditEvent, seq_of


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    s = await memory_store()
    yield s
    await s.close()


def _event(i: int, app: str = "web") -> AuditEvent:
    return AuditEvent(float(i), "alice", "ssh", "config:set", app, f"set K{i}")


async def _seqs(store: Store) -> list[int]:
    kvs, _ = await store.range(PREFIX)
    return [s for kv in kvs if (s := seq_of(kv.key)) is not None]


async def test_events_are_numbered_and_the_window_is_kept(store: Store) -> None:
    log = EventLog(store, limit=5)
    recorded = [await log.record(_event(i)) for i in range(1, 9)]
    assert [e.seq for e in recorded] == list(range(1, 9))
    assert await _seqs(store) == [4, 5, 6, 7, 8]
    assert (await store.get(SEQ_KEY)).value == b"8"
    events, newest, _ = await log.recent(3)
    assert [e.summary for e in events] == ["set K6", "set K7", "set K8"] and newest == 8


async def test_concurrent_recorders_never_share_a_number(store: Store) -> None:
    log = EventLog(store, limit=100)
    done = await asyncio.gather(*(log.record(_event(i)) for i in range(30)))
    assert sorted(e.seq for e in done) == list(range(1, 31))
    assert await _seqs(store) == list(range(1, 31))


async def test_a_lowered_limit_is_swept(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eventlog, "PRUNE_EVERY", 10)
    for i in range(1, 9):
        await EventLog(store, limit=100).record(_event(i))
    small = EventLog(store, limit=3)
    await small.record(_event(9))
    assert len(await _seqs(store)) == 8  # only the one that left the window went
    await small.record(_event(10))  # the sweep at 10 deletes the rest beyond the window
    assert await _seqs(store) == [8, 9, 10]
    events, _, _ = await small.recent(10)
    assert [e.seq for e in events] == [8, 9, 10]


async def test_recent_filters_by_app_across_blocks(store: Store) -> None:
    log = EventLog(store, limit=1000)
    for i in range(1, 351):
        await log.record(_event(i, "api" if i % 50 == 0 else "web"))
    events, newest, _ = await log.recent(4, "api")
    assert [e.seq for e in events] == [200, 250, 300, 350] and newest == 350
    events, _, _ = await log.recent(200)
    assert [e.seq for e in events] == list(range(151, 351))
    assert (await log.recent(0))[0] == []


async def test_follow_yields_new_events_after_the_ones_read(store: Store) -> None:
    log = EventLog(store)
    await log.record(_event(1))
    _, newest, revision = await log.recent(10)
    await log.record(_event(2, "api"))  # after the read: seen through the watch
    stream = log.follow(newest, revision, "web")
    got = asyncio.ensure_future(stream.__anext__())
    await log.record(_event(3, "web"))
    first = await asyncio.wait_for(got, 5)
    assert first is not None and (first.seq, first.app) == (3, "web")
    await stream.aclose()


async def test_follow_beats_a_heartbeat_while_quiet(store: Store,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eventlog, "HEARTBEAT", 0.05)
    log = EventLog(store)
    _, newest, revision = await log.recent(1)
    stream = log.follow(newest, revision)
    assert await asyncio.wait_for(stream.__anext__(), 5) is None
    await stream.aclose()


async def test_follow_reads_again_what_compaction_took_from_its_watch(store: Store) -> None:
    log = EventLog(store)
    await log.record(_event(1))
    _, newest, revision = await log.recent(10)
    await log.record(_event(2))
    await log.record(_event(3))
    await store.compact(await store.revision())  # the watch cannot start at revision + 1
    stream = log.follow(newest, revision)
    got = [await asyncio.wait_for(stream.__anext__(), 5) for _ in range(2)]
    assert [e.seq for e in got if e is not None] == [2, 3]
    later = asyncio.ensure_future(stream.__anext__())
    await log.record(_event(4))  # and it follows on from there
    fourth = await asyncio.wait_for(later, 5)
    assert fourth is not None and fourth.seq == 4
    await stream.aclose()
