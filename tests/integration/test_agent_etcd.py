"""The agent against a real etcd with real processes: it runs what is placed on it, stops
everything when it is cut off from the store for longer than its TTL, and registers again
(and runs its units again) when the store comes back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from shipmate import config as config_mod
from shipmate.agent import process
from shipmate.agent.agent import Agent
from shipmate.scheduler.model import Placement, dumps
from shipmate.scheduler.registry import Registry, placement_key
from shipmate.store.etcd import EtcdStore
from tests.conftest import EtcdServer

pytestmark = pytest.mark.integration

UNIT = """\
[Service]
ExecStart=/bin/sh -c 'echo up on %m; exec sleep 1000'
ExecStopPost=/bin/sh -c 'echo stopped >> {marker}'
"""


async def until(pred: Callable[[], bool], timeout: float = 15.0) -> float:
    began = time.monotonic()
    while not pred():
        if time.monotonic() - began > timeout:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)
    return time.monotonic() - began


@pytest.fixture
def etcd() -> Iterator[EtcdServer]:
    server = EtcdServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
async def store(etcd: EtcdServer) -> AsyncIterator[EtcdStore]:
    s = await EtcdStore.connect([etcd.endpoint], timeout=1.0)
    yield s
    await s.close()


async def test_cut_off_agent_stops_its_units_and_comes_back(
        etcd: EtcdServer, store: EtcdStore, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    reg = Registry(store)
    await reg.submit("cut.service", UNIT.format(marker=marker))
    await reg.set_desired("cut.service", "launched")
    await store.put(placement_key("cut.service"),
                    dumps(Placement("cut.service", ("m1",)).to_json()))
    cfg = config_mod.load({}, state_dir=tmp_path / "m1", machine_id="m1", agent_ttl=2.0,
                          reconcile_interval=1.0, etcd_endpoints=etcd.endpoint)
    agent = Agent(store, None, cfg)
    task = asyncio.create_task(agent.run())
    try:
        await until(lambda: (s := agent.supervisor.status("cut.service")) is not None
                    and s.phase == "running")
        st = agent.supervisor.status("cut.service")
        assert st is not None
        pid = st.main_pid
        await until(lambda: "cut.service" in agent._reported)
        assert (await reg.machines()).keys() == {"m1"}

        etcd.stop()  # partition: no renewal can succeed any more
        took = await until(lambda: agent.supervisor.status("cut.service") is None)
        assert took <= 2.0 + 2.5, took  # TTL, plus a renewal interval and the stop itself
        assert process.start_time(pid) is None
        assert marker.read_text() == "stopped\n"

        etcd.start()  # the store is back: register again and run the unit again
        await until(lambda: (s := agent.supervisor.status("cut.service")) is not None
                    and s.phase == "running", timeout=30)
        st = agent.supervisor.status("cut.service")
        assert st is not None and st.main_pid != pid
        await until(lambda: agent.heartbeat.registered)
        assert "m1" in await reg.machines()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await agent.supervisor.open()
        await agent.supervisor.stop_all()
        await agent.supervisor.close()
