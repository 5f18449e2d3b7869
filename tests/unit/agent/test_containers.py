"""``.container`` units through the one converge engine, with FakeEngine and FakeClock: a
changed spec is replaced start-first and health-gated; a failed check keeps the old container
serving and fails the unit with the reason; adoption and leftovers of a cut-short replacement."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from shipmate.agent.containers import MACHINE_LABEL, ContainerJob, ContainerUnits, choose
from shipmate.spec.container import SPEC_HASH_LABEL, ContainerSpec, HealthCheck, make_spec
from shipmate.spec.unitshipmate import UnitOptions
from shipmate.testing import FakeClock
from shipmate.testing.engine import FakeEngine

IMAGE = "shipmate/base:bookworm"
UNIT = "web.container"
CHECK = HealthCheck(("CMD-SHELL", "true"), interval=1.0)


def spec(value: str, *, health: bool = True) -> ContainerSpec:
    return make_spec("shipmate-web", IMAGE, command=["sleep", "1000"], env={"V": value},
                     labels={"shipmate.unit": UNIT}, health=CHECK if health else None)


async def until(clock: FakeClock, done: Callable[[], bool], steps: int = 200) -> None:
    for _ in range(steps):
        if done():
            return
        await clock.advance(0.5)
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


def units_with(engine: FakeEngine, clock: FakeClock) -> tuple[ContainerUnits, list[str]]:
    changed: list[str] = []
    return ContainerUnits(engine, "m1", clock=clock, on_change=changed.append), changed


async def test_a_changed_spec_is_replaced_start_first_once_healthy() -> None:
    engine, clock = FakeEngine(images=[IMAGE], health_on_start="starting"), FakeClock()
    units, changed = units_with(engine, clock)
    first = await units.start(UNIT, spec("1"))
    old = first.container_id
    engine.set_health(old, "healthy")
    mark = len(engine.writes)

    status = await units.start(UNIT, spec("2"))
    assert (status.active, status.sub) == ("activating", "start")  # the gate runs behind
    await until(clock, lambda: len(engine.containers) == 2)
    new = next(c for c in engine.containers.values() if c.id != old)
    assert new.spec.name.startswith("shipmate-web.next-") and new.state == "running"
    assert engine.containers[old].state == "running"  # the old one serves meanwhile
    engine.set_health(new.id, "healthy")
    await until(clock, lambda: changed == [UNIT])
    assert [(w.action, w.target.split(".next-")[0]) for w in engine.writes[mark:]] == [
        ("create", "shipmate-web"), ("start", "shipmate-web"), ("stop", "shipmate-web"),
        ("remove", "shipmate-web"), ("rename", "shipmate-web")]
    assert list(engine.containers) == [new.id] and new.spec.name == "shipmate-web"
    now = units.status(UNIT)
    assert now is not None and (now.active, now.container_id) == ("active", new.id)
    assert new.labels[MACHINE_LABEL] == "m1"


async def test_a_failed_check_keeps_the_old_container_and_fails_the_unit() -> None:
    engine, clock = FakeEngine(images=[IMAGE], health_on_start="starting"), FakeClock()
    units, changed = units_with(engine, clock)
    old = (await units.start(UNIT, spec("1"))).container_id
    engine.set_health(old, "healthy")
    engine.emit_log(old, "old one serving")

    await units.start(UNIT, spec("bad"))
    await until(clock, lambda: len(engine.containers) == 2)
    new = next(c for c in engine.containers.values() if c.id != old)
    engine.emit_log(new.id, "cannot open /data: no such file")
    engine.set_health(new.id, "unhealthy")
    await until(clock, lambda: changed == [UNIT])

    assert list(engine.containers) == [old] and engine.containers[old].state == "running"
    status = units.status(UNIT)
    assert status is not None and (status.active, status.sub) == ("failed", "failed")
    assert status.container_id == old and "failed its health check" in status.result
    assert "kept the old one" in status.result and "cannot open /data" in status.error
    assert status.to_json()["error"] == status.error
    logs = [line async for line in units.logs(UNIT)]
    assert "old one serving" in logs and any("cannot open /data" in x for x in logs)

    # the same spec is not tried again (the agent calls start on every pass while it differs)
    mark = len(engine.writes)
    again = await units.start(UNIT, spec("bad"))
    assert again.active == "failed" and engine.writes[mark:] == []
    # a fixed spec replaces the old container
    await units.start(UNIT, spec("3", health=False))
    await until(clock, lambda: changed == [UNIT, UNIT])
    (only,) = engine.containers.values()
    assert only.id != old and dict(only.spec.env)["V"] == "3"
    assert units.status(UNIT).active == "active"  # type: ignore[union-attr]


async def test_stop_first_and_a_gate_that_times_out() -> None:
    engine, clock = FakeEngine(images=[IMAGE], health_on_start="starting"), FakeClock()
    units, changed = units_with(engine, clock)
    old = (await units.start(UNIT, spec("1"))).container_id
    job = ContainerJob(spec("2"), UnitOptions(replace="stop-first", wait=5.0))
    await units.start(UNIT, job)
    await until(clock, lambda: len(engine.containers) == 2)
    assert engine.containers[old].state == "exited"  # stopped before the new one starts
    await until(clock, lambda: changed == [UNIT])  # never healthy: 5 s later it gives up
    status = units.status(UNIT)
    assert status is not None and "not healthy within 5s" in status.result
    assert list(engine.containers) == [old] and engine.containers[old].state == "running"


async def test_stopping_a_unit_mid_replacement_removes_both() -> None:
    engine, clock = FakeEngine(images=[IMAGE], health_on_start="starting"), FakeClock()
    units, _ = units_with(engine, clock)
    await units.start(UNIT, spec("1"))
    await units.start(UNIT, spec("2"))
    await until(clock, lambda: len(engine.containers) == 2)
    await units.stop(UNIT)
    assert engine.containers == {} and units.status(UNIT) is None and not units.names()


async def test_a_restarted_agent_adopts_and_finishes_a_cut_short_replacement() -> None:
    engine, clock = FakeEngine(images=[IMAGE]), FakeClock()
    units, _ = units_with(engine, clock)
    cid = (await units.start(UNIT, spec("1"))).container_id
    # the old container went, the new one (temporary name) had not taken the name yet
    await engine.rename(cid, "shipmate-web.next-0000")
    again, _ = units_with(engine, clock)
    assert await again.open() == [UNIT]
    mark = len(engine.writes)
    status = await again.start(UNIT, spec("1"))
    assert status.container_id == cid and status.active == "active"
    assert [(w.action, w.target) for w in engine.writes[mark:]] == [("rename", "shipmate-web")]


def info(cid: str, name: str, want: str, running: bool = True) -> object:
    from shipmate.engine.base import ContainerInfo

    return ContainerInfo(cid, name, IMAGE, "sha256:x", "running" if running else "exited",
                         {SPEC_HASH_LABEL: want}, {})


def test_choose_adopts_the_same_hash_else_replaces_the_named_running_one() -> None:
    s = spec("1")
    named_old = info("a", "shipmate-web", "old")
    temp_new = info("b", "shipmate-web.next-1", "new")
    named_new = info("c", "shipmate-web", "new")
    assert choose([named_new], s, "new") == (named_new, None)  # type: ignore[list-item]
    # an interrupted replacement's new container is not adopted while the old one serves
    assert choose([temp_new, named_old], s, "new") == (None, named_old)  # type: ignore[list-item]
    assert choose([temp_new], s, "new") == (temp_new, None)  # type: ignore[list-item]
    stopped = info("d", "shipmate-web", "old", running=False)
    assert choose([stopped], s, "new") == (None, None)  # type: ignore[list-item]


async def test_restarts_by_dockers_policy_are_counted_once_each() -> None:
    from shipmate import metrics

    engine, clock = FakeEngine(images=[IMAGE]), FakeClock()
    units, _ = units_with(engine, clock)
    before = metrics.AGENT_UNIT_RESTARTS.value(kind="container")
    started = await units.start(UNIT, spec("1", health=False))
    engine.restart_by_policy(started.container_id)  # before the agent's next look
    await units.refresh()
    engine.restart_by_policy(started.container_id)
    engine.restart_by_policy(started.container_id)
    await units.refresh()
    await units.refresh()  # nothing new: nothing counted
    assert metrics.AGENT_UNIT_RESTARTS.value(kind="container") == before + 3
    # A container found running (the daemon restarted) counts from then on, not its past.
    again, _ = units_with(engine, clock)
    await again.open()
    engine.restart_by_policy(started.container_id)
    await again.refresh()
    assert metrics.AGENT_UNIT_RESTARTS.value(kind="container") == before + 4
