"""The engine with reservations: why a unit waits is in the store (for fleet status,
list-units and ps:report) until it is placed, and later changes are planned from the watch."""

from __future__ import annotations

from shipmate.errors import ValidationError
from shipmate.scheduler.engine import SchedulerEngine
from shipmate.scheduler.model import Machine
from shipmate.scheduler.registry import Registry
from shipmate.store.base import Store
from shipmate.testing import FakeClock

from .conftest import eventually
from .test_engine import Running, placements

GiB = 2**30
UNIT = "[Service]\nExecStart=/bin/true\n[X-Fleet]\nReserveMemory={}\n"


async def add(store: Store, reg: Registry, mid: str, memory_gib: int) -> int:
    lease = await store.grant(1000.0)
    await reg.register_machine(Machine(mid, "127.0.0.1", (), 2.0, memory_gib * GiB), lease)
    return lease


async def test_a_unit_too_big_for_every_machine_waits_with_its_reason(
        store: Store, clock: FakeClock) -> None:
    reg = Registry(store)
    await add(store, reg, "m1", 1)
    await add(store, reg, "m2", 2)
    engine = SchedulerEngine(store, "m1", clock=clock, ttl=3.0)
    run = Running()
    run.start(engine)
    try:
        for name, size in (("small.service", "512m"), ("big.service", "4g")):
            await reg.submit(name, UNIT.format(size))
            await reg.set_desired(name, "launched")
        await eventually(lambda: _waiting(reg, "big.service"))
        assert await reg.waiting() == {
            "big.service": "needs 4 GiB memory; the largest free is 2 GiB on m2"}
        assert await placements(reg) == {"small.service": ("m1",)}
        lease = await add(store, reg, "m3", 8)  # a machine with room joins
        await eventually(lambda: _placed(reg, "big.service", ("m3",)))
        assert await reg.waiting() == {}
        await store.revoke(lease)  # ... and dies: the unit waits again
        await eventually(lambda: _waiting(reg, "big.service"))
        assert "big.service" not in await placements(reg)
        await reg.destroy("big.service")
        await eventually(lambda: _none_waiting(reg))
    finally:
        await run.close()


async def test_a_dead_machines_units_move_and_nothing_else_is_rewritten(
        store: Store, clock: FakeClock) -> None:
    reg = Registry(store)
    leases = {m: await add(store, reg, m, 5) for m in ("m1", "m2", "m3")}
    engine = SchedulerEngine(store, "m1", clock=clock, ttl=3.0)
    run = Running()
    run.start(engine)
    try:
        names = [f"u{i}.service" for i in range(9)]
        for name in names:
            await reg.submit(name, UNIT.format("1g"))
            await reg.set_desired(name, "launched")
        await eventually(lambda: _count(reg, 9))
        before = {kv.key: kv.mod_revision for kv in (await store.range(
            "/shipmate/fleet/placements/"))[0]}
        await store.revoke(leases["m3"])
        await eventually(lambda: _nothing_on(reg, "m3", 9))
        after = {kv.key: kv.mod_revision for kv in (await store.range(
            "/shipmate/fleet/placements/"))[0]}
        moved = {k for k in after if after[k] != before[k]}
        assert len(moved) == 3  # m3's three units, and only they
        assert await reg.waiting() == {}  # 5 GiB each on m1 and m2: room for 5 units each
    finally:
        await run.close()


async def test_bad_reservations_are_refused_at_submit(store: Store) -> None:
    reg = Registry(store)
    for bad in ("ReserveMemory=lots", "ReserveCPU=-1", "ReserveCPU=two"):
        try:
            await reg.submit("x.service", f"[Service]\nExecStart=/bin/true\n[X-Fleet]\n{bad}\n")
            raise AssertionError(f"{bad} accepted")
        except ValidationError as exc:
            assert "line 4" in exc.message and bad.split("=")[0] in exc.message
    assert await reg.units() == {}


async def _waiting(reg: Registry, name: str) -> bool:
    return name in await reg.waiting()


async def _none_waiting(reg: Registry) -> bool:
    return not await reg.waiting()


async def _placed(reg: Registry, name: str, where: tuple[str, ...]) -> bool:
    return (await placements(reg)).get(name) == where


async def _count(reg: Registry, n: int) -> bool:
    return len(await placements(reg)) == n


async def _nothing_on(reg: Registry, mid: str, n: int) -> bool:
    where = await placements(reg)
    return len(where) == n and all(mid not in ms for ms in where.values())
