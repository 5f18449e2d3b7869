"""Router progress: each router records the revision it made live under its machine's lease;
a deploy waits, bounded, for every live router (memory store, FakeClock)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from shipmate.router import keys
from shipmate.router.controller import RouterController
from shipmate.router.progress import (
    ProgressWriter,
    behind,
    router_key,
    routers_behind,
    wait_routers,
)
from shipmate.scheduler.registry import machine_key
from shipmate.store.base import Store
from shipmate.testing import FakeClock
from shipmate.testing.store import memory_store
from tests.unit.router.fakes import FakeProxy


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    s = await memory_store()
    yield s
    await s.close()


async def machine(store: Store, name: str) -> int:
    """A live machine (its heartbeat record under a lease); returns the lease."""
    lease = await store.grant(30)
    await store.put(machine_key(name), json.dumps({"id": name}), lease=lease)
    return lease


async def tick(clock: FakeClock, seconds: float) -> None:
    """Advance in poll-sized steps, letting the waiter read the store between them."""
    for _ in range(round(seconds / 0.1)):
        await clock.advance(0.1)
        for _ in range(5):
            await asyncio.sleep(0)


async def recorded(store: Store, name: str) -> int | None:
    kv = await store.get(router_key(name))
    return None if kv is None else int(json.loads(kv.value)["revision"])


def test_behind_counts_only_live_machines() -> None:
    records = {"m1": 10, "m2": 7, "gone": 1}
    assert behind(records, {"m1", "m2", "m3"}, 9) == ["m2"]
    assert behind(records, {"m1", "m2"}, 7) == []


async def test_the_record_lives_under_the_machine_lease_and_says_nothing_twice(
        store: Store) -> None:
    writer = ProgressWriter(store, "m1")
    await writer.record(5)
    assert await recorded(store, "m1") is None  # no machine lease yet: nothing to write under
    lease = await machine(store, "m1")
    first = await store.revision()
    await writer.record(first)
    kv = await store.get(router_key("m1"))
    assert kv is not None and kv.lease == lease and json.loads(kv.value) == {"revision": first}
    mine = await store.revision()
    await writer.record(mine)  # newer only by our own write: nothing new to say
    assert await store.revision() == mine
    await store.put("/shipmate/routes/active/x", "{}")
    await writer.record(await store.revision())
    assert await recorded(store, "m1") == mine + 1
    await store.revoke(lease)  # the machine dies: its router's record goes with it
    assert await recorded(store, "m1") is None


async def test_a_controller_records_each_pass(store: Store) -> None:
    await machine(store, "m1")
    controller = RouterController(store, FakeProxy(), clock=FakeClock(), machine_id="m1")
    await store.put(keys.active_key("web"), keys.encode_active("v1"))
    await controller.sync()
    assert await recorded(store, "m1") == controller.revision > 0


async def test_waits_for_every_live_router_and_gives_up_after_the_timeout(
        store: Store) -> None:
    clock = FakeClock()
    for name in ("m1", "m2", "m3"):
        await machine(store, name)
    writers = {n: ProgressWriter(store, n) for n in ("m1", "m2", "m3")}
    for w in writers.values():
        await w.record(1)
    await store.put(router_key("dead"), json.dumps({"revision": 0}))  # no heartbeat: ignored
    switch = await store.put(keys.active_key("web"), keys.encode_active("v2"))

    waiting = asyncio.create_task(wait_routers(store, switch, timeout=30, clock=clock))
    await tick(clock, 1)
    await writers["m1"].record(switch)
    await writers["m2"].record(switch)
    await tick(clock, 1)
    assert not waiting.done()  # m3 has not taken the switch yet
    assert await routers_behind(store, switch) == ["m3"]
    await writers["m3"].record(await store.revision())
    await tick(clock, 1)
    assert await asyncio.wait_for(waiting, 1) == []

    later = await store.put(keys.active_key("web"), keys.encode_active("v3"))
    await writers["m1"].record(later)
    stuck = asyncio.create_task(wait_routers(store, later, timeout=30, clock=clock))
    await tick(clock, 29)
    assert not stuck.done()
    await tick(clock, 2)  # a router that never catches up does not block for ever
    assert await asyncio.wait_for(stuck, 1) == ["m2", "m3"]
