"""Time as a dependency, so tests can drive it (see :class:`shipmate.testing.FakeClock`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    """Monotonic seconds and sleeping on them."""

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real monotonic clock."""

    def now(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep``."""
        await asyncio.sleep(max(0.0, seconds))


async def within(aw: Awaitable[T], seconds: float | None) -> T:
    """``await aw``, or TimeoutError after ``seconds`` of real time (None: no bound).

    Use this, not ``asyncio.wait_for``: on Python 3.11 ``wait_for`` swallows a cancellation
    that arrives just as ``aw`` finishes (CPython gh-86296), so a loop cancelled at that
    moment runs on and whoever waits for it to stop waits for ever. ``asyncio.timeout``
    lets the cancellation through."""
    async with asyncio.timeout(seconds):
        return await aw
