"""The deployer's waits, in fake time: instances that never start, the switch waiting for this
machine's router before old instances retire."""

import asyncio
import dataclasses
from pathlib import Path

import pytest

from shipmate import config
from shipmate.paas.deploy import DRAIN_SECONDS, ROUTE_TIMEOUT, START_TIMEOUT, Deployer, DeployError
from shipmate.paas.model import Release
from shipmate.paas.state import PaasState
from shipmate.paas.units import instance_units
from shipmate.router import keys as route_keys
from shipmate.scheduler.registry import Registry
from shipmate.testing import FakeClock
from shipmate.testing.store import memory_store


@dataclasses.dataclass
class Router:
    revision: int = 0


async def _deployer(tmp_path: Path, clock: FakeClock) -> Deployer:
    store = await memory_store(clock)
    cfg = config.load({}, state_dir=tmp_path)
    return Deployer(store, None, cfg, PaasState(store), Registry(store), clock=clock)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def asleep(clock: FakeClock) -> None:
    """Wait (real time, bounded) until the code under test sleeps on ``clock``: time
    advanced before that would pass it by."""
    async with asyncio.timeout(5):
        while not clock.sleepers:
            await asyncio.sleep(0.001)


async def run_for(clock: FakeClock, seconds: float, task: asyncio.Task[None],
                  step: float = 0.05) -> None:
    """Advance ``seconds`` in steps of the deployer's poll, each once ``task`` sleeps again
    (it reads the store between sleeps, so one big jump could pass a sleep it had not yet
    started); stops early when ``task`` is done."""
    end = clock.now() + seconds
    while clock.now() < end - 1e-9 and not task.done():
        async with asyncio.timeout(5):
            while not clock.sleepers and not task.done():
                await asyncio.sleep(0.001)
        await clock.advance(min(step, end - clock.now()))


async def test_without_a_local_router_there_is_nothing_to_wait_for(
        tmp_path: Path, clock: FakeClock) -> None:
    deployer = await _deployer(tmp_path, clock)
    assert await deployer._wait_routed(10**6, 0.0) is True


async def test_waits_until_the_router_has_made_the_revision_live(
        tmp_path: Path, clock: FakeClock) -> None:
    deployer = await _deployer(tmp_path, clock)
    router = Router(revision=5)
    deployer.router = router
    waiting = asyncio.create_task(deployer._wait_routed(7, 5.0))
    await asleep(clock)
    await clock.advance(1.0)
    assert not waiting.done()  # a fake second later the router is still behind
    router.revision = 7
    await clock.advance(0.05)
    assert await waiting is True

    never = asyncio.create_task(deployer._wait_routed(8, 5.0))
    await asleep(clock)
    await clock.advance(4.9)
    assert not never.done()
    await clock.advance(0.2)  # past the timeout
    assert await never is False


async def test_instances_that_never_start_fail_the_deploy_after_the_start_timeout(
        tmp_path: Path, clock: FakeClock) -> None:
    deployer = await _deployer(tmp_path, clock)
    units = instance_units("web-app", "v1-abcd", "sha256:img", {"web": "node server.js"},
                           {"web": 1}, {}, "a" * 40)
    for unit in units:  # submitted and wanted, but no agent runs them
        await deployer.registry.submit(unit.name, unit.text)
    waiting = asyncio.create_task(deployer._wait_running("web-app", "v1-abcd", units))
    await asleep(clock)
    await clock.advance(START_TIMEOUT - 1)
    assert not waiting.done()
    await clock.advance(2)
    with pytest.raises(DeployError, match=f"did not start within {START_TIMEOUT:.0f}s") as info:
        await waiting
    assert units[0].name in info.value.message


async def test_old_instances_are_destroyed_only_after_the_router_switched(
        tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    deployer = await _deployer(tmp_path, clock)
    router = Router(revision=1)
    deployer.router = router
    destroyed: list[list[str]] = []

    async def destroy(names: list[str]) -> None:
        destroyed.append(names)

    monkeypatch.setattr(deployer, "_destroy", destroy)
    retire = asyncio.create_task(deployer._retire(["old.container"], 3, live=False))
    await run_for(clock, ROUTE_TIMEOUT - 1, retire)
    assert destroyed == []  # the router is still on revision 1
    router.revision = 3
    await run_for(clock, 0.05, retire)
    assert destroyed == []  # switched: the old instance drains first
    await run_for(clock, DRAIN_SECONDS + 0.1, retire)  # a little over: float steps fall short
    await asyncio.wait_for(retire, 5)
    assert destroyed == [["old.container"]]


async def test_a_router_that_never_switches_still_lets_old_instances_go_in_the_end(
        tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    deployer = await _deployer(tmp_path, clock)
    deployer.router = Router(revision=1)
    destroyed: list[list[str]] = []

    async def destroy(names: list[str]) -> None:
        destroyed.append(names)

    monkeypatch.setattr(deployer, "_destroy", destroy)
    retire = asyncio.create_task(deployer._retire(["old.container"], 3, live=False))
    await run_for(clock, ROUTE_TIMEOUT, retire, step=1.0)
    await run_for(clock, DRAIN_SECONDS + 1, retire, step=1.0)
    await asyncio.wait_for(retire, 5)
    assert destroyed == [["old.container"]]
    assert clock.now() >= 1000.0 + ROUTE_TIMEOUT + DRAIN_SECONDS  # it waited both out


async def test_switch_waits_for_its_own_revision_not_for_later_unrelated_writes(
        tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    deployer = await _deployer(tmp_path, clock)
    store = deployer.store
    await deployer.state.create_app("web-app")
    await deployer.state.set_global_domain("apps.test")
    router = Router()
    deployer.router = router
    monkeypatch.setattr(deployer, "_retire", _never_retire)
    watch = await store.watch(route_keys.ROUTES_PREFIX, start_revision=await store.revision() + 1)
    lines: list[str] = []
    release = Release(1, "sha256:img", {}, {"web": 1}, {"web": ""}, "a" * 40, 0.0)
    switch = asyncio.create_task(deployer._switch("web-app", release, "v1-abcd", lines.append))
    # A router that reads the switch once; then the store moves on with writes it ignores.
    async with watch:
        async for _event in watch:
            active = await store.get(route_keys.active_key("web-app"))
            route = await store.get(route_keys.domains_key("web-app"))
            if active and route:
                router.revision = max(active.mod_revision, route.mod_revision)
                break
    await store.put("/shipmate/unrelated", "x")
    await clock.advance(0.05)
    await asyncio.wait_for(switch, 5)
    assert await store.revision() > router.revision
    assert not any("has not taken the switch" in line for line in lines), lines
    assert lines[-1].startswith("-----> Switched traffic to v1")


async def _never_retire(names: list[str], revision: int, live: bool) -> None:
    """Retiring is tested above; here the switch alone matters."""


async def test_a_stopping_daemon_retires_at_once_what_is_still_draining(
        tmp_path: Path, clock: FakeClock) -> None:
    deployer = await _deployer(tmp_path, clock)
    units = instance_units("web-app", "v1-abcd", "sha256:img", {"web": "node server.js"},
                           {"web": 1}, {}, "a" * 40)
    for unit in units:
        await deployer.registry.submit(unit.name, unit.text)
    deployer._start_retiring([units[0].name], 3, live=True)
    await asleep(clock)  # draining, and fake time stands still: it would never end
    assert await deployer.settle(timeout=0.05) == [units[0].name]
    assert await deployer.registry.units() == {}
    assert await deployer.settle() == []  # nothing left under way
