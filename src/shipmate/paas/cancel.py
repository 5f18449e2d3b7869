"""Deploys that can be stopped: the deploys this daemon runs, by app, so that ``ps:stop`` and
``apps:destroy`` cancel them and win; and a progress stream that cancels its deploy when the
client goes away.

A cancelled deploy cleans up as a failed one does (:meth:`Deployer.deploy
<shipmate.paas.deploy.Deployer.deploy>`): the new instances are removed, the app's lock is
released, the release that was serving keeps serving. The switch itself is short and not
interrupted half way (see docs/paas.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from aiohttp import web

from shipmate.errors import ShipmateError
from shipmate.httpapi.server import stream_lines

log = logging.getLogger(__name__)

Emit = Callable[[str], None]
_DONE = object()
# How often a stream looks whether its client is still there: a deploy may emit nothing for
# minutes (a health-check wait), so a failed write cannot be the only sign.
_POLL = 0.25


class DeployCancelled(ShipmateError):
    """A deploy was cancelled (by ``ps:stop``, ``apps:destroy`` or its client leaving)."""

    status = 409
    code = "deploy_cancelled"


class RunningDeploys:
    """The deploy tasks running on this daemon, by app."""

    def __init__(self) -> None:
        self._apps: dict[asyncio.Task[object], str] = {}
        self._reasons: dict[asyncio.Task[object], list[str]] = {}

    @contextlib.contextmanager
    def track(self, app: str) -> Iterator[None]:
        """Register the current task as a deploy of ``app`` while the block runs; a cancel
        from :meth:`cancel` surfaces as :class:`DeployCancelled` saying why."""
        task = asyncio.current_task()
        assert task is not None
        self._apps[task], self._reasons[task] = app, []
        try:
            yield
        except asyncio.CancelledError:
            reasons = self._reasons.get(task)
            if not reasons:
                raise
            task.uncancel()
            raise DeployCancelled(f"deploy of {app} cancelled by {reasons[0]}",
                                  hint="the release that was running keeps serving") from None
        finally:
            self._apps.pop(task, None)
            self._reasons.pop(task, None)

    def running(self, app: str) -> int:
        """How many deploys of ``app`` run now."""
        return sum(1 for a in self._apps.values() if a == app)

    async def cancel(self, app: str, reason: str, timeout: float = 120.0) -> int:
        """Cancel the running deploys of ``app`` and wait (bounded) until they cleaned up.
        Returns how many there were."""
        me = asyncio.current_task()
        tasks = {t for t, a in self._apps.items() if a == app and t is not me}
        if tasks:
            log.warning("cancelling %d deploy(s) of %s: %s", len(tasks), app, reason)
        await self.cancel_tasks(tasks, reason, timeout)
        return len(tasks)

    async def cancel_tasks(self, tasks: set[asyncio.Task[object]], reason: str,
                           timeout: float = 120.0) -> None:
        """Cancel ``tasks`` (deploys registered here) and wait (bounded) until they end."""
        for task in tasks:
            reasons = self._reasons.get(task)
            if task.done() or task.cancelling() or reasons:
                continue  # cancel once: a second cancel would cut its clean-up short
            if reasons is not None:
                reasons.append(reason)
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)


async def stream_deploy(request: web.Request, running: RunningDeploys, app: str,
                        work: Callable[[Emit], Awaitable[object]]) -> web.StreamResponse:
    """Run ``work(emit)`` as a deploy of ``app`` (see :class:`RunningDeploys`), streaming
    its lines; the deploy is cancelled when the client disconnects."""
    return await stream_lines(request, _lines(request, running, app, work))


async def _lines(request: web.Request, running: RunningDeploys, app: str,
                 work: Callable[[Emit], Awaitable[object]]) -> AsyncIterator[str]:
    queue: asyncio.Queue[object] = asyncio.Queue()

    async def runner() -> None:
        try:
            with running.track(app):
                await work(queue.put_nowait)
        finally:
            queue.put_nowait(_DONE)

    task: asyncio.Task[object] = asyncio.create_task(runner())
    watcher = asyncio.create_task(_cancel_when_gone(request, running, app, task))
    try:
        while (item := await queue.get()) is not _DONE:
            yield str(item)
    finally:
        watcher.cancel()
        if not task.done():  # the consumer went away: so does the deploy
            await running.cancel_tasks({task}, "its client disconnecting")
    task.result()


async def _cancel_when_gone(request: web.Request, running: RunningDeploys, app: str,
                            task: asyncio.Task[object]) -> None:
    # aiohttp sets no event when a client leaves (unless handlers are cancelled, which the
    # daemon's other streams must not be), so its transport is looked at.
    while request.transport is not None and not request.transport.is_closing():  # noqa: ASYNC110
        await asyncio.sleep(_POLL)
    log.warning("the client of a deploy of %s disconnected: cancelling the deploy", app)
    await running.cancel_tasks({task}, "its client disconnecting")
