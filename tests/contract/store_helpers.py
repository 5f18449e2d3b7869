"""Helpers of the store contract suite (:mod:`tests.contract.store`), shared by its backends."""

from __future__ import annotations

import asyncio
import dataclasses

from shipmate.store.base import Event, Watch
from shipmate.testing import FakeClock


@dataclasses.dataclass
class LeaseTime:
    """How lease tests make time pass on a backend."""

    ttl: float
    clock: FakeClock | None  # None: real time

    async def elapse(self, seconds: float) -> None:
        """Let ``seconds`` pass for the store's leases."""
        if self.clock is not None:
            await self.clock.advance(seconds)
        else:
            await asyncio.sleep(seconds)


async def next_event(watch: Watch, timeout: float = 10.0) -> Event:
    """The watch's next event, failing the test after ``timeout`` seconds."""
    return await asyncio.wait_for(anext(watch), timeout)


async def events_until(watch: Watch, revision: int, timeout: float = 10.0) -> list[Event]:
    """Events from ``watch`` up to and including the last one at ``revision``."""
    out: list[Event] = []

    async def collect() -> None:
        while not out or out[-1].revision < revision:
            out.append(await anext(watch))

    await asyncio.wait_for(collect(), timeout)
    return out
