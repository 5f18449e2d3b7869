"""The scheduler's metrics: each placement written counts under its action, each pass is
timed."""

from __future__ import annotations

import asyncio
import contextlib

from shipmate import metrics
from shipmate.scheduler.engine import SchedulerEngine
from shipmate.scheduler.registry import Registry
from shipmate.store.base import Store
from shipmate.testing import FakeClock

from .conftest import eventually
from .test_engine import add_machine, placements, start_units


async def test_placements_and_passes_are_counted(store: Store, clock: FakeClock) -> None:
    reg = Registry(store)
    await add_machine(store, reg, "m1")
    scheduled = metrics.SCHEDULER_PLACEMENTS.value(action="schedule")
    unscheduled = metrics.SCHEDULER_PLACEMENTS.value(action="unschedule")
    passes = metrics.SCHEDULER_RECONCILE_SECONDS.count(outcome="ok")
    engine = SchedulerEngine(store, "m1", clock=clock, ttl=3.0)
    task = asyncio.create_task(engine.run())
    try:
        await start_units(reg, ["a.service", "b.service"], "[Service]\nExecStart=/bin/true\n")
        await eventually(lambda: _placed(reg, 2))
        await eventually(lambda: metrics.SCHEDULER_PLACEMENTS.value(action="schedule")
                         == scheduled + 2)
        await reg.set_desired("a.service", "inactive")
        await eventually(lambda: _placed(reg, 1))
        await eventually(lambda: metrics.SCHEDULER_PLACEMENTS.value(action="unschedule")
                         == unscheduled + 1)
        assert metrics.SCHEDULER_RECONCILE_SECONDS.count(outcome="ok") >= passes + 2
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _placed(reg: Registry, n: int) -> bool:
    return len(await placements(reg)) == n
