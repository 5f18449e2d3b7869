"""The daemon's components: each is a long-running task with a name and a state that
``shipmate status`` shows. A component that fails is reported (and retried with backoff by
its supervisor loop) without taking the daemon down."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

from shipmate.errors import ShipmateError

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Component:
    """One long-running part of the daemon (agent, scheduler, router, cache, ssh)."""

    name: str
    run: Callable[[], Awaitable[None]]
    state: str = "starting"
    error: str | None = None
    restarts: int = 0
    since: float = dataclasses.field(default_factory=time.time)
    task: asyncio.Task[None] | None = None

    def describe(self) -> dict[str, object]:
        """A JSON-able summary for ``status``."""
        return {"name": self.name, "state": self.state, "error": self.error,
                "restarts": self.restarts, "since": self.since}


async def supervise(component: Component, *, max_backoff: float = 10.0) -> None:
    """Run ``component`` until cancelled, restarting it with capped backoff when it fails."""
    backoff = 0.5
    while True:
        component.state, component.since = "running", time.time()
        try:
            await component.run()
            component.state, component.error = "stopped", None
            return
        except asyncio.CancelledError:
            component.state = "stopped"
            raise
        except ShipmateError as exc:
            component.error = str(exc)
            log.warning("%s failed: %s", component.name, exc)
        except Exception as exc:
            component.error = f"{type(exc).__name__}: {exc}"
            log.exception("%s crashed", component.name)
        component.state, component.restarts = "failed", component.restarts + 1
        await asyncio.sleep(backoff)
        backoff = min(max_backoff, backoff * 2)
