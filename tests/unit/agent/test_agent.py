"""The agent with fakes: in-memory store, FakeEngine, FakeClock. Container units only (the
process supervisor is exercised with real processes in tests/integration)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from shipmate import config as config_mod
from shipmate.agent.agent import Agent
from shipmate.agent.containers import MACHINE_LABEL
from shipmate.agent.publish import read_published
from shipmate.scheduler.model import Placement, dumps
from shipmate.scheduler.registry import Registry, placement_key
from shipmate.store.base import Store
from shipmate.testing import FakeClock
from shipmate.testing.engine import FakeEngine
from shipmate.testing.store import memory_store

WEB = """\
[Unit]
Description=web %i

[Container]
Image=shipmate/base:bookworm
Exec=/bin/sleep 1000
Environment=WHERE=%H
Label=machine=%m
"""


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    s = await memory_store()
    yield s
    await s.close()


def make_agent(store: Store, engine: FakeEngine, tmp_path: Path, clock: FakeClock,
               machine: str = "m1") -> Agent:
    cfg = config_mod.load({}, state_dir=tmp_path / machine, machine_id=machine,
                          public_ip="10.0.0.1", metadata="region=eu", agent_ttl=3.0,
                          reconcile_interval=5.0)
    return Agent(store, engine, cfg, clock=clock, hostname="host1")


async def settle(clock: FakeClock, until: Callable[[], bool] | None = None,
                 steps: int = 40) -> None:
    for _ in range(steps):
        await clock.advance(0.5)
        await asyncio.sleep(0.01)
        if until is not None and until():
            return
    if until is not None:
        raise AssertionError("condition not reached")


async def place(store: Store, unit: str, *machines: str) -> None:
    await store.put(placement_key(unit), dumps(Placement(unit, machines).to_json()))


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(images=["shipmate/base:bookworm"])


async def start_agent(agent: Agent, clock: FakeClock) -> asyncio.Task[None]:
    """Run the agent until it has registered; the caller ends the task."""
    task = asyncio.create_task(agent.run())
    await settle(clock, lambda: agent.heartbeat.registered)
    return task


@contextlib.asynccontextmanager
async def running(agent: Agent, clock: FakeClock) -> AsyncIterator[asyncio.Task[None]]:
    """The agent running (registered) for the body; cancelled afterwards."""
    task = await start_agent(agent, clock)
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_registers_the_machine_under_a_lease(store: Store, engine: FakeEngine,
                                                   tmp_path: Path) -> None:
    clock = FakeClock()
    agent = make_agent(store, engine, tmp_path, clock)
    async with running(agent, clock):
        machines = await Registry(store).machines()
        assert machines["m1"].public_ip == "10.0.0.1"
        assert machines["m1"].metadata_dict == {"region": "eu"}
        kv = await store.get("/shipmate/fleet/machines/m1")
        assert kv is not None and kv.lease == agent.lease != 0


async def test_runs_placed_launched_container_and_follows_desired_state(
        store: Store, engine: FakeEngine, tmp_path: Path) -> None:
    clock = FakeClock()
    reg = Registry(store)
    agent = make_agent(store, engine, tmp_path, clock)
    async with running(agent, clock):
        await reg.submit("web@1.container", WEB)
        await reg.set_desired("web@1.container", "launched")
        await place(store, "web@1.container", "m1")
        await settle(clock, lambda: engine.container_named("shipmate-web_1") is not None)
        c = engine.container_named("shipmate-web_1")
        assert c is not None and c.state == "running"
        assert c.labels[MACHINE_LABEL] == "m1" and c.labels["machine"] == "m1"
        assert dict(c.spec.env)["WHERE"] == "host1"

        async def state() -> tuple[str, str, str] | None:
            states = [s for s in await reg.unit_states() if s.unit == "web@1.container"]
            return (states[0].machine, states[0].active_state, states[0].sub_state) \
                if states else None

        await settle(clock, lambda: agent._reported.get("web@1.container") is not None)
        assert await state() == ("m1", "active", "running")

        await reg.set_desired("web@1.container", "loaded")  # fleetctl stop
        await settle(clock, lambda: engine.container_named("shipmate-web_1") is None)
        await settle(clock, lambda: (s := agent._reported.get("web@1.container")) is not None
                     and s.active_state == "inactive")
        assert await state() == ("m1", "inactive", "dead")

        await store.delete(placement_key("web@1.container"))  # unscheduled
        await settle(clock, lambda: "web@1.container" not in agent._reported)
        assert await state() is None


async def test_units_placed_elsewhere_or_invalid_here_are_not_run(
        store: Store, engine: FakeEngine, tmp_path: Path) -> None:
    clock = FakeClock()
    reg = Registry(store)
    agent = make_agent(store, engine, tmp_path, clock)
    async with running(agent, clock):
        await reg.submit("a.container", WEB)
        await reg.set_desired("a.container", "launched")
        await place(store, "a.container", "m2")
        await reg.submit("b.container", WEB.replace("shipmate/base:bookworm", "missing:1"))
        await reg.set_desired("b.container", "launched")
        await place(store, "b.container", "m1")
        # activating while its start runs (in the background), then failed
        await settle(clock, lambda: (st := agent._reported.get("b.container")) is not None
                     and st.active_state != "activating")
        assert engine.container_named("shipmate-a") is None
        st = agent._reported["b.container"]
        assert (st.active_state, st.sub_state) == ("failed", "failed")
        assert "b.container" in agent.errors


async def test_a_restarted_agent_adopts_its_containers(store: Store, engine: FakeEngine,
                                                       tmp_path: Path) -> None:
    clock = FakeClock()
    reg = Registry(store)
    await reg.submit("web@1.container", WEB)
    await reg.set_desired("web@1.container", "launched")
    await place(store, "web@1.container", "m1")
    first = make_agent(store, engine, tmp_path, clock)
    task = await start_agent(first, clock)
    await settle(clock, lambda: engine.container_named("shipmate-web_1") is not None)
    c = engine.container_named("shipmate-web_1")
    assert c is not None
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    writes = len(engine.writes)

    second = make_agent(store, engine, tmp_path, clock)
    async with running(second, clock) as task:
        await settle(clock, lambda: "web@1.container" in second._reported)
        assert engine.writes[writes:] == []  # no create, no start, no remove
        assert engine.container_named("shipmate-web_1") is c
        assert second._reported["web@1.container"].active_state == "active"


async def test_changed_unit_replaces_the_container(store: Store, engine: FakeEngine,
                                                   tmp_path: Path) -> None:
    clock = FakeClock()
    reg = Registry(store)
    agent = make_agent(store, engine, tmp_path, clock)
    async with running(agent, clock):
        await reg.submit("w.container", WEB)
        await reg.set_desired("w.container", "launched")
        await place(store, "w.container", "m1")
        await settle(clock, lambda: engine.container_named("shipmate-w") is not None)
        old = engine.container_named("shipmate-w")
        assert old is not None
        await reg.replace("w.container", WEB.replace("1000", "2000"))
        await settle(clock, lambda: (c := engine.container_named("shipmate-w")) is not None
                     and c.id != old.id and c.state == "running")
        # start-first: the new one was started before the old one was stopped
        actions = [(w.action, w.target.split(".next-")[0]) for w in engine.writes]
        assert actions.index(("start", "shipmate-w"), 2) < actions.index(("stop", "shipmate-w"))
        # the new container (made under a temporary name) matches its unit: not replaced again
        new = engine.container_named("shipmate-w")
        creates = sum(w.action == "create" for w in engine.writes)
        await settle(clock, steps=30)  # three reconciles
        assert engine.container_named("shipmate-w") is new
        assert sum(w.action == "create" for w in engine.writes) == creates


async def test_a_changed_unit_that_fails_its_check_keeps_the_old_container(
        store: Store, tmp_path: Path) -> None:
    clock = FakeClock()
    engine = FakeEngine(images=["shipmate/base:bookworm"], health_on_start="starting")
    reg = Registry(store)
    agent = make_agent(store, engine, tmp_path, clock)
    checked = WEB + "HealthCmd=true\nHealthInterval=1s\n"
    async with running(agent, clock):
        await reg.submit("w.container", checked)
        await reg.set_desired("w.container", "launched")
        await place(store, "w.container", "m1")
        await settle(clock, lambda: engine.container_named("shipmate-w") is not None)
        old = engine.container_named("shipmate-w")
        assert old is not None
        engine.set_health(old.id, "healthy")
        new_text = checked.replace("1000", "2000") + "\n[X-Shipmate]\nWait=10s\n"
        record = await reg.replace("w.container", new_text)  # apply --via-daemon's way in
        await settle(clock, lambda: len(engine.containers) == 2)
        await settle(clock, lambda: (s := agent._reported.get("w.container")) is not None
                     and s.hash == record.hash)
        assert agent._reported["w.container"].active_state == "activating"
        new = next(c for c in engine.containers.values() if c.id != old.id)
        engine.set_health(new.id, "unhealthy")
        await settle(clock, lambda: agent._reported["w.container"].active_state == "failed")
        assert list(engine.containers) == [old.id] and old.state == "running"
        detail = agent.local_detail("w.container")
        assert detail is not None and "failed its health check" in detail["result"]
        assert detail["container_id"] == old.id
        writes = len(engine.writes)
        await settle(clock, steps=20)  # later passes do not try the same spec again
        assert engine.writes[writes:] == []


async def test_publishes_status_and_journal_for_other_machines(
        store: Store, engine: FakeEngine, tmp_path: Path) -> None:
    clock = FakeClock()
    reg = Registry(store)
    agent = make_agent(store, engine, tmp_path, clock)
    agent.publisher.interval = 0.0
    async with running(agent, clock):
        await reg.submit("j.container", WEB)
        await reg.set_desired("j.container", "launched")
        await place(store, "j.container", "m1")
        await settle(clock, lambda: engine.container_named("shipmate-j") is not None)
        c = engine.container_named("shipmate-j")
        assert c is not None
        engine.emit_log(c.id, "hello from j")
        agent._report_soon.set()

        async def published() -> dict[str, object]:
            return (await read_published(store, "j.container")).get("m1", {})

        for _ in range(40):
            rec = await published()
            if "hello from j" in (rec.get("lines") or []):
                break
            await settle(clock, steps=1)
        rec = await published()
        assert rec["lines"] == ["hello from j"]
        detail = rec["detail"]
        assert isinstance(detail, dict) and detail["active"] == "active"


async def test_a_quick_restart_keeps_the_lease(store: Store, engine: FakeEngine,
                                               tmp_path: Path) -> None:
    clock = FakeClock()
    first = make_agent(store, engine, tmp_path, clock)
    task = await start_agent(first, clock)
    lease = first.lease
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    second = make_agent(store, engine, tmp_path, clock)
    async with running(second, clock) as task:
        assert second.lease == lease


async def test_adopted_unit_waits_for_the_scheduler_only_if_placed_nowhere(
        store: Store, engine: FakeEngine, tmp_path: Path) -> None:
    clock = FakeClock()
    reg = Registry(store)
    for name in ("stay.container", "moved.container"):
        await reg.submit(name, WEB)
        await reg.set_desired(name, "launched")
        await place(store, name, "m1")
    first = make_agent(store, engine, tmp_path, clock)
    task = await start_agent(first, clock)
    await settle(clock, lambda: len(first._reported) == 2)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    # while the daemon was away its lease expired: the scheduler unscheduled both units,
    # then placed one elsewhere
    await store.delete(placement_key("stay.container"))
    await place(store, "moved.container", "m2")
    await clock.advance(10)
    writes = len(engine.writes)

    second = make_agent(store, engine, tmp_path, clock)
    async with running(second, clock) as task:
        await settle(clock, lambda: engine.container_named("shipmate-moved") is None)
        assert engine.container_named("shipmate-stay") is not None  # kept during the grace
        await place(store, "stay.container", "m1")  # the scheduler places it back here
        await settle(clock, lambda: "stay.container" in second._reported)
        assert [w.action for w in engine.writes[writes:]] == ["stop", "remove"]


async def test_routed_units_publish_their_endpoints_under_the_machine_lease(
        store: Store, engine: FakeEngine, tmp_path: Path) -> None:
    clock = FakeClock()
    reg = Registry(store)
    agent = make_agent(store, engine, tmp_path, clock)
    routed = WEB + "PublishPort=8080\n\n[X-Shipmate]\nDomain=shop.example.com\n"
    key = "/shipmate/endpoints/shop/web/shop@1-m1"
    async with running(agent, clock):
        for name, text in (("shop@1.container", routed), ("plain.container", WEB)):
            await reg.submit(name, text)
            await reg.set_desired(name, "launched")
            await place(store, name, "m1")
        await settle(clock, lambda: "plain.container" in agent._reported
                     and "shop@1.container" in agent._reported)
        await settle(clock, lambda: agent.endpoints._published != {})
        kv = await store.get(key)
        assert kv is not None and kv.lease == agent.lease
        c = engine.container_named("shipmate-shop_1")
        assert c is not None
        value = json.loads(kv.value)
        assert (value["host"], value["port"], value["domains"]) == (
            "10.0.0.1", c.ports[0].host_port, ["shop.example.com"])
        kvs, _ = await store.range("/shipmate/endpoints/")
        assert [k.key for k in kvs] == [key]  # the unit without a route has none

        engine.exit(c.id, 1)  # a dead container takes no traffic
        await settle(clock, lambda: not agent.endpoints._published)
        assert await store.get(key) is None


async def test_a_start_is_not_held_behind_a_slow_stop(store: Store, tmp_path: Path) -> None:
    """An old instance that ignores SIGTERM (PID 1 without an init) takes the whole stop
    timeout to go; the new instance placed at the same time starts meanwhile."""
    clock = FakeClock()
    engine = FakeEngine(images=["shipmate/base:bookworm"], clock=clock)
    reg = Registry(store)
    agent = make_agent(store, engine, tmp_path, clock)
    async with running(agent, clock):
        await reg.submit("old.container", WEB)
        await reg.set_desired("old.container", "launched")
        await place(store, "old.container", "m1")
        await settle(clock, lambda: engine.container_named("shipmate-old") is not None)
        engine.ignore_sigterm("shipmate-old")
        started_at = clock.now()
        await reg.set_desired("old.container", "loaded")  # retired...
        await reg.submit("new.container", WEB)  # ... as the next deploy's instance arrives
        await reg.set_desired("new.container", "launched")
        await place(store, "new.container", "m1")
        await settle(clock, lambda: (c := engine.container_named("shipmate-new")) is not None
                     and c.state == "running")
        old = engine.container_named("shipmate-old")
        assert old is not None and old.state == "running"  # its stop is still waiting
        assert clock.now() - started_at < agent.containers.stop_timeout  # type: ignore[union-attr]
        await settle(clock, lambda: engine.container_named("shipmate-old") is None)
        assert clock.now() - started_at >= 10.0  # it did take the whole timeout


async def test_a_unit_stopped_and_started_again_waits_for_its_own_stop(
        store: Store, tmp_path: Path) -> None:
    """A unit's own start still follows its stop (one job per unit at a time)."""
    clock = FakeClock()
    engine = FakeEngine(images=["shipmate/base:bookworm"], clock=clock)
    reg = Registry(store)
    agent = make_agent(store, engine, tmp_path, clock)
    async with running(agent, clock):
        await reg.submit("a.container", WEB)
        await reg.set_desired("a.container", "launched")
        await place(store, "a.container", "m1")
        await settle(clock, lambda: engine.container_named("shipmate-a") is not None)
        first = engine.container_named("shipmate-a")
        assert first is not None
        engine.ignore_sigterm(first.id)
        await reg.set_desired("a.container", "loaded")
        await settle(clock, lambda: agent.jobs.busy("a.container") == "stop")
        await reg.set_desired("a.container", "launched")
        await settle(clock, lambda: (c := engine.container_named("shipmate-a")) is not None
                     and c.id != first.id and c.state == "running", steps=60)
        assert first.state == "removed" and first.exit_code == 137
