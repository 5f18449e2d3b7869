"""The store contract: every backend (SQLite, etcd) must pass all of these.

The test functions take a ``store`` fixture and, for leases, a ``lease_time``
(:class:`LeaseTime`). A backend's suite imports them into a collected module with its own
fixtures: ``tests/unit/store/test_contract.py`` (SQLite on a FakeClock) and
``tests/integration/test_store_contract.py`` (a real etcd).

Revisions are compared relative to each other only: on etcd the suite shares one server, so
absolute revision numbers belong to the whole session.
"""

from __future__ import annotations

import asyncio

import pytest

from shipmate.errors import CompactedError, LeaseNotFoundError
from shipmate.store.base import Compare, CompareOp, CompareTarget, Op, Store, Watch
from tests.contract.store_helpers import LeaseTime, events_until, next_event

# keys and values --------------------------------------------------------------------------


async def test_put_get_revisions_and_versions(store: Store) -> None:
    before = await store.revision()
    r1 = await store.put("/a", "one")
    assert r1 > before
    assert await store.revision() == r1
    kv = await store.get("/a")
    assert kv is not None
    assert (kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease) == (
        b"one", r1, r1, 1, 0)
    assert kv.text() == "one"

    r2 = await store.put("/a", b"two")
    assert r2 > r1
    kv = await store.get("/a")
    assert kv is not None
    assert (kv.value, kv.create_revision, kv.mod_revision, kv.version) == (b"two", r1, r2, 2)

    assert await store.delete("/a") == 1
    assert await store.get("/a") is None
    r3 = await store.put("/a", "three")  # re-created: a new life, version starts again
    kv = await store.get("/a")
    assert kv is not None
    assert r3 > r2
    assert (kv.create_revision, kv.mod_revision, kv.version) == (r3, r3, 1)


async def test_get_missing_key_is_none(store: Store) -> None:
    assert await store.get("/nope") is None


async def test_binary_and_unicode_values_round_trip(store: Store) -> None:
    await store.put("/bin", bytes(range(256)))
    await store.put("/uni/ключ", "значение ✓")
    assert (await store.get("/bin")).value == bytes(range(256))  # type: ignore[union-attr]
    assert (await store.get("/uni/ключ")).text() == "значение ✓"  # type: ignore[union-attr]


async def test_range_by_prefix_is_sorted_and_bounded(store: Store) -> None:
    for key in ["/p/c", "/p/a", "/pa", "/p/b/x", "/o", "/p/"]:
        last = await store.put(key, key)
    kvs, rev = await store.range("/p/")
    assert [kv.key for kv in kvs] == ["/p/", "/p/a", "/p/b/x", "/p/c"]
    assert [kv.value for kv in kvs] == [b"/p/", b"/p/a", b"/p/b/x", b"/p/c"]
    assert rev >= last
    kvs, _ = await store.range("/p")
    assert [kv.key for kv in kvs] == ["/p/", "/p/a", "/p/b/x", "/p/c", "/pa"]
    assert (await store.range("/zzz/"))[0] == []


async def test_delete_counts_and_missing_delete_is_zero(store: Store) -> None:
    await store.put("/d", "x")
    before = await store.revision()
    assert await store.delete("/d") == 1
    after = await store.revision()
    assert after > before
    assert await store.delete("/d") == 0
    assert await store.revision() == after  # deleting nothing is not a change


async def test_delete_prefix_removes_only_that_prefix(store: Store) -> None:
    for key in ["/p/a", "/p/b", "/p/c/d", "/pq", "/q"]:
        await store.put(key, "x")
    watch = await store.watch("/p")
    assert await store.delete("/p/", prefix=True) == 3
    assert (await store.range("/p/"))[0] == []
    assert [kv.key for kv in (await store.range("/"))[0]] == ["/pq", "/q"]
    events = [await next_event(watch) for _ in range(3)]
    assert [(e.type, e.kv.key) for e in events] == [
        ("delete", "/p/a"), ("delete", "/p/b"), ("delete", "/p/c/d")]
    assert len({e.revision for e in events}) == 1  # one delete, one revision
    await watch.close()


# transactions -----------------------------------------------------------------------------


async def test_txn_cas_success_and_failure(store: Store) -> None:
    r1 = await store.put("/cas", "v1")
    ok = await store.txn(
        [Compare.mod_is("/cas", r1)],
        [Op.put("/cas", "v2"), Op.get("/cas")],
        [Op.get("/cas")],
    )
    assert ok.succeeded
    assert ok.revision > r1
    assert ok.responses[0] == ()
    assert [kv.value for kv in ok.responses[1]] == [b"v2"]  # reads see the txn's own writes

    stale = await store.txn([Compare.mod_is("/cas", r1)], [Op.put("/cas", "v3")],
                            [Op.get("/cas")])
    assert not stale.succeeded
    assert stale.revision == ok.revision  # the failure branch wrote nothing
    assert [kv.value for kv in stale.responses[0]] == [b"v2"]
    assert (await store.get("/cas")).value == b"v2"  # type: ignore[union-attr]


async def test_txn_applies_all_ops_at_one_revision(store: Store) -> None:
    await store.put("/t/old", "x")
    res = await store.txn([], [Op.put("/t/a", "1"), Op.put("/t/b", "2"), Op.delete("/t/old")])
    assert res.succeeded
    assert [kv.key for kv in res.responses[2]] == ["/t/old"]
    kvs, _ = await store.range("/t/")
    assert [kv.key for kv in kvs] == ["/t/a", "/t/b"]
    assert {kv.mod_revision for kv in kvs} == {res.revision}


async def test_txn_get_and_delete_prefix_ops(store: Store) -> None:
    for key in ["/g/1", "/g/2", "/h"]:
        await store.put(key, key)
    res = await store.txn([], [Op.get("/g/", prefix=True)])
    assert [kv.key for kv in res.responses[0]] == ["/g/1", "/g/2"]
    res = await store.txn([], [Op.delete("/g/", prefix=True)])
    assert sorted(kv.key for kv in res.responses[0]) == ["/g/1", "/g/2"]
    assert await store.get("/h") is not None


async def test_create_only_if_missing(store: Store) -> None:
    assert await store.create("/once", "first")
    assert not await store.create("/once", "second")
    assert (await store.get("/once")).value == b"first"  # type: ignore[union-attr]


COMPARES: list[tuple[CompareTarget, CompareOp, int | bytes | str, bool]] = [
    ("value", "==", b"m", True), ("value", "==", b"n", False),
    ("value", "!=", b"n", True), ("value", "!=", b"m", False),
    ("value", "<", b"n", True), ("value", "<", b"a", False),
    ("value", ">", b"a", True), ("value", ">", b"z", False),
    ("version", "==", 2, True), ("version", "==", 1, False),
    ("version", ">", 1, True), ("version", "<", 2, False), ("version", "!=", 3, True),
    ("create", "==", "create", True), ("create", "<", "create", False),
    ("mod", "==", "mod", True), ("mod", ">", "create", True), ("mod", "<", "mod", False),
    ("lease", "==", "lease", True), ("lease", "==", 0, False), ("lease", "!=", 0, True),
]


@pytest.mark.parametrize(("target", "op", "value", "expected"), COMPARES)
async def test_txn_compare_targets(
    store: Store, target: CompareTarget, op: CompareOp, value: int | bytes | str,
    expected: bool,
) -> None:
    lease = await store.grant(60)
    await store.put("/cmp", "first")
    await store.put("/cmp", "m", lease=lease)  # version 2, value b"m", on a lease
    kv = await store.get("/cmp")
    assert kv is not None
    actual = {"create": kv.create_revision, "mod": kv.mod_revision, "lease": lease}
    res = await store.txn([Compare("/cmp", target, op, actual.get(str(value), value))],  # type: ignore[arg-type]
                          [Op.put("/flag", "yes")], [Op.put("/flag", "no")])
    assert res.succeeded is expected
    assert (await store.get("/flag")).value == (b"yes" if expected else b"no")  # type: ignore[union-attr]
    await store.revoke(lease)


async def test_txn_compares_on_missing_key(store: Store) -> None:
    assert (await store.txn([Compare.missing("/ghost")], [])).succeeded
    assert (await store.txn([Compare.mod_is("/ghost", 0)], [])).succeeded
    assert (await store.txn([Compare("/ghost", "create", "==", 0)], [])).succeeded
    assert (await store.txn([Compare("/ghost", "lease", "==", 0)], [])).succeeded
    # etcd's rule: any value compare on a missing key fails, even "!=".
    assert not (await store.txn([Compare("/ghost", "value", "!=", b"x")], [])).succeeded
    assert not (await store.txn([Compare("/ghost", "value", "==", b"")], [])).succeeded


async def test_txn_all_compares_must_hold(store: Store) -> None:
    await store.put("/x", "1")
    await store.put("/y", "2")
    res = await store.txn(
        [Compare("/x", "value", "==", b"1"), Compare("/y", "value", "==", b"nope")],
        [Op.put("/z", "ok")])
    assert not res.succeeded
    assert await store.get("/z") is None


async def test_concurrent_cas_increments_lose_no_update(store: Store) -> None:
    await store.put("/counter", "0")
    attempts = 0

    async def increment() -> None:
        nonlocal attempts
        while True:
            attempts += 1
            kv = await store.get("/counter")
            assert kv is not None
            res = await store.txn([Compare.mod_is("/counter", kv.mod_revision)],
                                  [Op.put("/counter", str(int(kv.value) + 1))])
            if res.succeeded:
                return

    await asyncio.gather(*(increment() for _ in range(20)))
    kv = await store.get("/counter")
    assert kv is not None
    assert kv.value == b"20"
    assert kv.version == 21
    assert attempts >= 20


# watches ----------------------------------------------------------------------------------


async def test_watch_from_revision_exactly_once_in_order_with_racing_writes(
    store: Store,
) -> None:
    """Watches open at several revisions while three writers race; each sees every event
    from its start revision, in order, exactly once, then the live tail."""
    await store.put("/w/first", "0")
    written: list[tuple[int, str, bytes]] = []
    watches: list[tuple[int, Watch]] = []

    async def writer(w: int) -> None:
        for i in range(80):
            key, value = f"/w/k{i % 7}", f"{w}-{i}".encode()
            written.append((await store.put(key, value), key, value))

    async def opener() -> None:
        for _ in range(10):
            while len(written) < 20 * (len(watches) + 1):
                await asyncio.sleep(0.001)
            start = max(r for r, _, _ in written) - 3  # some history, some live
            watches.append((start, await store.watch("/w/", start_revision=start)))

    await asyncio.gather(writer(1), writer(2), writer(3), opener())
    await store.put("/other/x", "not watched")
    # A last write: anything between it and the expected events would be a duplicate or a stray.
    end = await store.put("/w/end", "end")
    for start, watch in watches:
        got = [(e.revision, e.kv.key, e.kv.value) for e in await events_until(watch, end)]
        assert got == [*sorted(w for w in written if w[0] >= start), (end, "/w/end", b"end")]
        await watch.close()


async def test_watch_without_start_sees_only_later_events(store: Store) -> None:
    await store.put("/n/old", "x")
    watch = await store.watch("/n/")
    rev = await store.put("/n/new", "y")
    event = await next_event(watch)
    got = (event.type, event.kv.key, event.kv.value, event.revision)
    assert got == ("put", "/n/new", b"y", rev)
    await watch.close()


async def test_watch_reports_puts_and_deletes_under_prefix_only(store: Store) -> None:
    start = await store.put("/s/a", "1")
    await store.put("/sx", "not under /s/")
    await store.put("/s/a", "2")
    await store.delete("/s/a")
    watch = await store.watch("/s/", start_revision=start)
    events = [await next_event(watch) for _ in range(3)]
    assert [(e.type, e.kv.key, e.kv.value) for e in events] == [
        ("put", "/s/a", b"1"), ("put", "/s/a", b"2"), ("delete", "/s/a", b"")]
    assert [e.kv.version for e in events[:2]] == [1, 2]
    assert events[2].revision > events[1].revision > events[0].revision == start
    # Nothing else: the next event is a later write, not a stray from outside the prefix.
    end = await store.put("/s/end", "3")
    event = await next_event(watch)
    assert (event.kv.key, event.revision) == ("/s/end", end)
    await watch.close()


async def test_watch_close_ends_iteration(store: Store) -> None:
    watch = await store.watch("/c/")
    seen: list[str] = []
    got_one = asyncio.Event()

    async def consume() -> None:
        async for e in watch:
            seen.append(e.kv.key)
            got_one.set()

    task = asyncio.create_task(consume())
    await store.put("/c/1", "x")
    await asyncio.wait_for(got_one.wait(), 10)
    await watch.close()
    await asyncio.wait_for(task, 5)  # iteration ends: the consumer returns
    assert seen == ["/c/1"]


async def test_watch_from_compacted_revision_raises(store: Store) -> None:
    old = await store.put("/k/a", "1")
    await store.put("/k/a", "2")
    keep = await store.put("/k/a", "3")
    await store.compact(keep)
    with pytest.raises(CompactedError) as info:
        watch = await store.watch("/k/", start_revision=old)
        async with watch:
            await next_event(watch)
    assert info.value.compact_revision >= keep
    # The compact revision itself is still there.
    async with await store.watch("/k/", start_revision=keep) as watch:
        event = await next_event(watch)
        assert (event.kv.value, event.revision) == (b"3", keep)
    kv = await store.get("/k/a")  # compaction keeps current values
    assert kv is not None
    assert kv.value == b"3"


# leases -----------------------------------------------------------------------------------


async def test_expired_lease_deletes_keys_and_notifies_watchers(
    store: Store, lease_time: LeaseTime,
) -> None:
    lease = await store.grant(lease_time.ttl)
    assert lease > 0
    watch = await store.watch("/l/")
    await store.put("/l/a", "1", lease=lease)
    await store.put("/l/b", "2", lease=lease)
    await store.put("/l/keep", "3")
    assert [(await next_event(watch)).kv.lease for _ in range(3)] == [lease, lease, 0]

    await lease_time.elapse(lease_time.ttl + 0.5)
    events = [await next_event(watch, lease_time.ttl + 10) for _ in range(2)]
    assert sorted((e.type, e.kv.key) for e in events) == [("delete", "/l/a"), ("delete", "/l/b")]
    assert [kv.key for kv in (await store.range("/l/"))[0]] == ["/l/keep"]
    assert await store.time_to_live(lease) is None
    with pytest.raises(LeaseNotFoundError):
        await store.keepalive(lease)
    await watch.close()


async def test_revoke_deletes_keys_now(store: Store) -> None:
    lease = await store.grant(60)
    await store.put("/r/a", "1", lease=lease)
    await store.put("/r/b", "2", lease=lease)
    watch = await store.watch("/r/")
    await store.revoke(lease)
    assert (await store.range("/r/"))[0] == []
    events = [await next_event(watch) for _ in range(2)]
    assert sorted((e.type, e.kv.key) for e in events) == [("delete", "/r/a"), ("delete", "/r/b")]
    assert await store.time_to_live(lease) is None
    await store.revoke(lease)  # unknown leases are ignored
    await watch.close()


async def test_keepalive_extends_lease(store: Store, lease_time: LeaseTime) -> None:
    ttl = lease_time.ttl
    lease = await store.grant(ttl)
    await store.put("/ka", "x", lease=lease)
    await lease_time.elapse(0.75 * ttl)
    assert await store.keepalive(lease) == pytest.approx(ttl)
    left = await store.time_to_live(lease)
    assert left is not None
    assert 0 < left <= ttl
    await lease_time.elapse(0.75 * ttl)  # 1.5 TTL since the grant: alive thanks to keepalive
    assert await store.get("/ka") is not None
    assert await store.time_to_live(lease) is not None

    await lease_time.elapse(ttl)
    for _ in range(200):  # expiry is asynchronous on every backend
        if await store.get("/ka") is None:
            break
        await asyncio.sleep(0.05)
    assert await store.get("/ka") is None


async def test_time_to_live_of_fresh_lease(store: Store, lease_time: LeaseTime) -> None:
    lease = await store.grant(lease_time.ttl)
    left = await store.time_to_live(lease)
    assert left is not None
    assert lease_time.ttl - 1.5 <= left <= lease_time.ttl
    await store.revoke(lease)
    assert await store.time_to_live(lease) is None


async def test_keepalive_unknown_lease_raises(store: Store) -> None:
    lease = await store.grant(60)
    await store.revoke(lease)
    with pytest.raises(LeaseNotFoundError):
        await store.keepalive(lease)


async def test_put_on_unknown_lease_raises(store: Store) -> None:
    lease = await store.grant(60)
    await store.revoke(lease)
    with pytest.raises(LeaseNotFoundError):
        await store.put("/orphan", "x", lease=lease)
    assert await store.get("/orphan") is None


async def test_put_without_lease_detaches_key(store: Store) -> None:
    lease = await store.grant(60)
    await store.put("/det", "1", lease=lease)
    await store.put("/det", "2")
    await store.revoke(lease)
    kv = await store.get("/det")
    assert kv is not None
    assert (kv.value, kv.lease) == (b"2", 0)
