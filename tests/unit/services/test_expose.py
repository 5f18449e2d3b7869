"""``postgres:expose``: a container that cannot start on the new port gives way to one on
the previous port (the agent with FakeEngine and FakeClock runs the service's unit). The
tests call the replacement step of ``expose``/``unexpose`` itself: ``expose`` first checks
that the host port is free by binding it, which unit tests may not do."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shipmate import config
from shipmate.agent.agent import Agent
from shipmate.engine.base import ContainerInfo
from shipmate.errors import ConflictError, ShipmateError
from shipmate.paas.service import Paas
from shipmate.scheduler.model import Placement, dumps
from shipmate.scheduler.registry import placement_key
from shipmate.services.manager import ServiceManager
from shipmate.services.model import Service, unit_text
from shipmate.testing import FakeClock
from shipmate.testing.engine import FakeEngine
from shipmate.testing.store import memory_store

TAKEN = 15999  # the host port another program holds


class _Engine(FakeEngine):
    """Refuses to start a container publishing :data:`TAKEN`, as dockerd does when the
    port is already allocated."""

    async def start(self, container: str) -> None:
        c = self._get(container)
        if any(p.host_port == TAKEN for p in c.spec.ports):
            raise ConflictError(f"driver failed programming external connectivity: "
                                f"Bind for 0.0.0.0:{TAKEN} failed: port is already allocated")
        await super().start(container)


@contextlib.asynccontextmanager
async def _running(tmp_path: Path, engine: FakeEngine) -> AsyncIterator[ServiceManager]:
    """A machine ``m1``: its agent (on a fake clock that a task moves on) and the manager."""
    clock = FakeClock()
    store = await memory_store(clock)
    cfg = config.load({}, state_dir=tmp_path, machine_id="m1", public_ip="10.0.0.1",
                      agent_ttl=3.0, reconcile_interval=1.0)
    agent = Agent(store, engine, cfg, clock=clock, hostname="host1")
    tasks = [asyncio.create_task(agent.run()), asyncio.create_task(_tick(clock))]
    try:
        yield ServiceManager(store, engine, cfg, Paas(store, engine, cfg))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await store.close()


async def _tick(clock: FakeClock) -> None:
    while True:
        await clock.advance(0.5)
        await asyncio.sleep(0.01)


async def _created(manager: ServiceManager, engine: FakeEngine, exposed: int) -> Service:
    """A running Postgres service ``db`` (as ``postgres:create`` leaves it)."""
    service = Service("postgres", "db", "15", "ab" * 16, 1.0, "m1", exposed=exposed)
    engine.add_image(service.spec.image(service.version))
    await manager.state.create(service)
    await manager.registry.submit(service.unit, unit_text(service))
    await manager.registry.set_desired(service.unit, "launched")
    await manager.store.put(placement_key(service.unit),
                            dumps(Placement(service.unit, ("m1",)).to_json()))
    await asyncio.wait_for(manager.wait_ready(service), 20)
    return service


def _published(info: ContainerInfo | None) -> list[int]:
    assert info is not None and info.running
    return [p.host_port for p in info.ports]


@pytest.mark.parametrize("before", [0, 15432])
async def test_an_expose_whose_container_does_not_start_goes_back(
        tmp_path: Path, before: int) -> None:
    engine = _Engine()
    async with _running(tmp_path, engine) as manager:
        service = await _created(manager, engine, before)
        lines: list[str] = []
        with pytest.raises(ShipmateError, match="failed to start"):
            await asyncio.wait_for(manager._republish(service, TAKEN, lines.append), 30)
        assert any("going back to" in line for line in lines), lines
        back = await manager.state.get("postgres", "db")
        assert back.exposed == before
        assert await manager.registry.unit(service.unit) == \
            await manager.registry.replace(service.unit, unit_text(service))
        info = await engine.inspect(service.container)
        assert _published(info) == ([before] if before else [])
        # and a port that can be bound is taken afterwards
        await asyncio.wait_for(manager._republish(back, 15433, lines.append), 30)
        exposed = await engine.inspect(service.container)
        assert _published(exposed) == [15433]
        assert (await manager.state.get("postgres", "db")).exposed == 15433
        # and it stays: the agent does not replace (stop) the database again and again
        await asyncio.sleep(1)  # ~25 reconciles of the fake clock
        assert exposed is not None and await engine.inspect(service.container) == exposed
