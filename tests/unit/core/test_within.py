"""``clock.within``: a bounded wait that never swallows a cancellation (CPython gh-86296,
which made an agent loop run on after its cancel and hung a daemon's stop)."""

from __future__ import annotations

import asyncio
import pathlib

import pytest

import shipmate
from shipmate.clock import within


async def cancel_as_it_finishes(wait: object) -> asyncio.Task[int]:
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def waiter() -> int:
        return await wait(fut, 10)  # type: ignore[operator,no-any-return]

    task = asyncio.create_task(waiter())
    await asyncio.sleep(0)  # the task is waiting on fut now
    fut.set_result(1)
    task.cancel()  # in the same loop turn as the result
    return task


async def test_a_cancel_that_arrives_as_the_wait_ends_gets_through() -> None:
    task = await cancel_as_it_finishes(within)
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_bound_still_holds() -> None:
    with pytest.raises(TimeoutError):
        await within(asyncio.sleep(5), 0.01)
    assert await within(asyncio.sleep(0, "done"), None) == "done"


def test_no_module_uses_asyncio_wait_for() -> None:
    src = pathlib.Path(shipmate.__file__).parent
    users = [str(p.relative_to(src)) for p in src.rglob("*.py")
             if "asyncio.wait_for(" in p.read_text()]
    assert users == [], "use shipmate.clock.within (see its docstring)"
