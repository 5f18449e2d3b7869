"""The engine: one leader, failover, fencing, reconcile on events."""

from __future__ import annotations

import asyncio
import contextlib

from shipmate.scheduler.election import Election
from shipmate.scheduler.engine import Deposed, SchedulerEngine, Write
from shipmate.scheduler.model import Machine
from shipmate.scheduler.registry import PLACEMENTS, Registry, placement_key
from shipmate.store.base import Store
from shipmate.testing import FakeClock

from .conftest import CuttableStore, eventually

TTL = 3.0


def conflicting(n: int) -> str:
    return "[Service]\nExecStart=/bin/true\n[X-Fleet]\nConflicts=x*\n"


async def start_units(reg: Registry, names: list[str], text: str) -> None:
    for name in names:
        await reg.submit(name, text)
        await reg.set_desired(name, "launched")


async def add_machine(store: Store, reg: Registry, mid: str, ttl: float = 1000.0) -> int:
    lease = await store.grant(ttl)
    await reg.register_machine(Machine(mid, "127.0.0.1"), lease)
    return lease


class Running:
    """Engines running as tasks, cancelled at the end."""

    def __init__(self) -> None:
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, engine: SchedulerEngine) -> None:
        self.tasks[engine.machine_id] = asyncio.create_task(engine.run())

    async def stop(self, mid: str) -> None:
        task = self.tasks.pop(mid)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def close(self) -> None:
        for mid in list(self.tasks):
            await self.stop(mid)


async def placements(reg: Registry) -> dict[str, tuple[str, ...]]:
    return {u: p.machines for u, p in (await reg.placements()).items()}


async def test_exactly_one_leader_places_units(store: Store, clock: FakeClock) -> None:
    reg = Registry(store)
    for mid in ("m1", "m2", "m3"):
        await add_machine(store, reg, mid)
    engines = [SchedulerEngine(store, m, clock=clock, ttl=TTL) for m in ("m1", "m2")]
    run = Running()
    for e in engines:
        run.start(e)
    try:
        await eventually(lambda: any(e.is_leader for e in engines))
        await start_units(reg, [f"x{i}.service" for i in range(5)], conflicting(5))
        await eventually(lambda: _count(reg, 3))
        where = await placements(reg)
        assert sorted(m for ms in where.values() for m in ms) == ["m1", "m2", "m3"]
        for _ in range(3):
            await clock.advance(1.0)
        assert sum(e.is_leader for e in engines) == 1
        assert (await reg.leader()).machine in ("m1", "m2")  # type: ignore[union-attr]
        # destroying a running unit lets a waiting one take its machine
        running = sorted(where)[0]
        await reg.destroy(running)
        await eventually(lambda: _count(reg, 3, exclude=running))
    finally:
        await run.close()


async def _count(reg: Registry, n: int, exclude: str = "") -> bool:
    where = await placements(reg)
    return len(where) == n and exclude not in where


async def test_leader_resigns_other_takes_over_and_machine_loss_reschedules(
        store: Store, clock: FakeClock) -> None:
    reg = Registry(store)
    leases = {mid: await add_machine(store, reg, mid) for mid in ("m1", "m2")}
    a = SchedulerEngine(store, "m1", clock=clock, ttl=TTL)
    b = SchedulerEngine(store, "m2", clock=clock, ttl=TTL)
    run = Running()
    run.start(a)
    await eventually(lambda: a.is_leader)
    run.start(b)
    await start_units(reg, ["x1.service", "x2.service"], conflicting(2))
    await eventually(lambda: _count(reg, 2))
    try:
        await run.stop("m1")  # cancelled: resigns, b is woken by the delete event
        await eventually(lambda: b.is_leader)
        await store.revoke(leases["m1"])  # machine m1 dies
        await eventually(lambda: _only_on(reg, "m2"))
        assert (await placements(reg)) == {"x1.service": ("m2",)} or (
            await placements(reg)) == {"x2.service": ("m2",)}
    finally:
        await run.close()


async def _only_on(reg: Registry, mid: str) -> bool:
    where = await placements(reg)
    return len(where) == 1 and all(ms == (mid,) for ms in where.values())


async def test_cut_off_leader_is_replaced_after_ttl_and_fenced(
        store: Store, clock: FakeClock) -> None:
    reg = Registry(store)
    await add_machine(store, reg, "m1")
    cut = CuttableStore(store)
    a = SchedulerEngine(cut, "m1", clock=clock, ttl=TTL)
    b = SchedulerEngine(store, "m2", clock=clock, ttl=TTL)
    run = Running()
    run.start(a)
    await eventually(lambda: a.is_leader)
    old = a.leadership
    assert old is not None
    run.start(b)
    try:
        cut.cut = True
        for _ in range(8):
            await clock.advance(TTL / 3)
        await eventually(lambda: b.is_leader and not a.is_leader)
        # the deposed leader's writes are refused by the fence
        cut.cut = False
        await start_units(reg, ["x1.service"], conflicting(1))
        try:
            await a.reconcile_once(old)
            raise AssertionError("deposed leader reconciled")
        except Deposed:
            pass
        assert not await a._write([Write(placement_key("x1.service"), ("m1",), ())], old)
    finally:
        await run.close()


async def test_election_try_acquire_is_exclusive(store: Store, clock: FakeClock) -> None:
    e1, e2 = Election(store, "m1", ttl=TTL, clock=clock), Election(store, "m2", ttl=TTL,
                                                                  clock=clock)
    won = await e1.try_acquire()
    assert won is not None and await e2.try_acquire() is None
    await clock.advance(TTL + 0.5)  # nobody keeps it alive: expires
    won2 = await e2.try_acquire()
    assert won2 is not None and won2.revision > won.revision
    assert (await store.txn([won.fence()], [])).succeeded is False
    assert (await store.txn([won2.fence()], [])).succeeded is True
    await e2.resign(won2)
    assert (await store.range(PLACEMENTS))[0] == []


async def test_timer_reconcile_repairs_what_no_watch_event_announced(
        store: Store, clock: FakeClock) -> None:
    reg = Registry(store)
    await add_machine(store, reg, "m1")
    engine = SchedulerEngine(store, "m1", clock=clock, ttl=TTL, reconcile_interval=5.0)
    run = Running()
    run.start(engine)
    try:
        await start_units(reg, ["a.service"], "[Service]\nExecStart=/bin/true\n")
        await eventually(lambda: _count(reg, 1))
        await eventually(lambda: _settled(engine, store))  # no pass is due or running
        before = engine.reconciles
        await store.delete(PLACEMENTS + "a.service")  # placements/ changes trigger nothing
        deleted = await store.revision()
        await eventually(lambda: engine.watched_revision >= deleted)  # judged, not acted on
        assert engine.triggered_revision < deleted
        assert await placements(reg) == {} and engine.reconciles == before
        for _ in range(6):
            await clock.advance(1.0)  # keepalives keep the leadership; the timer fires
        await eventually(lambda: _count(reg, 1))
        assert engine.is_leader and engine.reconciles > before
    finally:
        await run.close()


async def _settled(engine: SchedulerEngine, store: Store) -> bool:
    """The watch has judged every write, and no pass runs or is due."""
    return engine.watched_revision >= await store.revision() and engine.idle
