"""Small asyncio helpers for the scheduler's concurrent loops."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable


async def cancel_all(tasks: Iterable[asyncio.Future[object]]) -> None:
    """Cancel ``tasks`` and wait for them to finish, without swallowing a cancellation of
    the caller itself (``asyncio.wait`` lets that one propagate)."""
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # mark retrieved: failures were logged where they mattered


async def first(*aws: Awaitable[object]) -> None:
    """Wait until the first of ``aws`` finishes, then cancel the others."""
    tasks: list[asyncio.Future[object]] = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_all(tasks)
