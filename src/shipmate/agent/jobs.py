"""The agent's starts and stops, one background job per unit.

A reconcile pass only decides and dispatches: each start or stop runs as its own task, so a
slow one (a container that takes its full stop timeout, an image fetched from another
machine) never holds back the start of an unrelated unit. At most one job runs per unit at a
time; a unit with a job in flight is left alone by later passes until that job ends, and the
end of every job wakes the reconciler, which then plans again from what is really there (a
``.service`` unit restarted for a changed digest is stopped, then started by the next pass).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal

log = logging.getLogger(__name__)
Kind = Literal["start", "stop"]


class UnitJobs:
    """Per-unit background jobs; ``on_done(unit)`` is called when one ends (any way)."""

    def __init__(self, on_done: Callable[[str], None]) -> None:
        self.on_done = on_done
        self._tasks: dict[str, tuple[Kind, asyncio.Task[None]]] = {}

    def busy(self, unit: str) -> Kind | None:
        """What is under way for ``unit`` (None: nothing)."""
        job = self._tasks.get(unit)
        return job[0] if job is not None else None

    def names(self, kind: Kind) -> set[str]:
        """Units with a job of ``kind`` in flight."""
        return {n for n, (k, _t) in self._tasks.items() if k == kind}

    def spawn(self, unit: str, kind: Kind, job: Coroutine[Any, Any, None]) -> bool:
        """Run ``job`` for ``unit`` in the background, unless one is already running for it
        (then ``job`` is closed unrun and False returned)."""
        if unit in self._tasks:
            job.close()
            return False
        task = asyncio.ensure_future(job)
        self._tasks[unit] = (kind, task)
        task.add_done_callback(lambda t: self._ended(unit, t))
        return True

    def _ended(self, unit: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(unit, (None, None))[1] is task:
            del self._tasks[unit]
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: job failed", unit, exc_info=task.exception())
        self.on_done(unit)

    async def wait(self) -> None:
        """Until every job in flight now has ended."""
        tasks = [t for _k, t in self._tasks.values()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def cancel_all(self) -> None:
        """Cancel every job in flight and wait until they have ended."""
        tasks = [t for _k, t in self._tasks.values()]
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
