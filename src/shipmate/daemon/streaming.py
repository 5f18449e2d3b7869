"""Turn a coroutine that reports progress through an ``emit(line)`` callback into an async
iterator of lines, so long work (builds, deploys) streams to the user as it happens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

Emit = Callable[[str], None]
_DONE = object()


async def lines_of(work: Callable[[Emit], Awaitable[object]]) -> AsyncIterator[str]:
    """Run ``work(emit)``; yield each emitted line as it comes; re-raise its error at the end.

    If the consumer goes away (client disconnected), the work goes on to completion: a deploy
    must not be left half done because a terminal closed.
    """
    queue: asyncio.Queue[object] = asyncio.Queue()

    async def runner() -> None:
        try:
            await work(queue.put_nowait)
        finally:
            queue.put_nowait(_DONE)

    task = asyncio.create_task(runner())
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                break
            yield str(item)
    finally:
        if not task.done():
            await asyncio.shield(task)
    task.result()
