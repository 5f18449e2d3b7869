"""Keeps nginx in step with the store: watch the route and endpoint keys, and on every change
(debounced) and every ``interval`` re-read the whole state, render it and apply it.

Re-reading everything, rather than applying watch events one by one, is deliberate: watches can
miss events (compaction, reconnects), and the pure render makes a full pass cheap. An unchanged
state renders to the same bytes, which :meth:`Proxy.apply` skips, so the periodic pass costs no
reload.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Protocol

from shipmate import metrics
from shipmate.clock import Clock, SystemClock
from shipmate.errors import RouterError, StoreError, ValidationError
from shipmate.router.isolate import Isolation
from shipmate.router.keys import ENDPOINTS_PREFIX, ROUTES_PREFIX
from shipmate.router.progress import ProgressWriter
from shipmate.router.render import RenderOptions, render
from shipmate.router.routes import RouterState, state_from_kvs
from shipmate.router.tlskeys import TLS_PREFIX
from shipmate.store.base import Op, Store, Watch

log = logging.getLogger(__name__)

WATCHED_PREFIXES = (ROUTES_PREFIX, ENDPOINTS_PREFIX, TLS_PREFIX)


class Proxy(Protocol):
    """What the controller drives: :class:`~shipmate.router.nginx.Nginx`, or a fake in tests."""

    http_port: int
    https_port: int
    render_options: RenderOptions

    async def apply(self, config_text: str, files: Mapping[str, str] | None = None) -> bool:
        """Make ``config_text`` live with its certificate ``files`` (name -> PEM); False if
        it already was. ValidationError if refused."""
        ...

    async def check(self, config_text: str) -> str | None:
        """nginx's complaint about ``config_text`` (None: it passes); nothing goes live."""
        ...


class RouterController:
    """Re-renders the router config whenever routes or endpoints change in the store."""

    def __init__(
        self,
        store: Store,
        proxy: Proxy,
        *,
        clock: Clock | None = None,
        interval: float = 5.0,
        debounce: float = 0.05,
        retry: float = 1.0,
        global_domain: str = "",
        machine_id: str = "",
    ) -> None:
        self._store = store
        self._proxy = proxy
        self._clock = clock or SystemClock()
        self._interval = interval
        self._debounce = debounce
        self._retry = retry
        self._global_domain = global_domain
        self._problems: tuple[str, ...] = ()
        self._isolation = Isolation()
        #: The state last made live, and the store revision it was read at.
        self.state: RouterState | None = None
        self.revision = 0
        #: How many passes reloaded nginx, and the last error a pass met (None when it worked).
        self.reloads = 0
        self.last_error: Exception | None = None
        #: Records the revision made live under the machine's lease, for deploys on any
        #: machine to wait for (:mod:`shipmate.router.progress`).
        self._progress = ProgressWriter(store, machine_id) if machine_id else None

    async def run(self) -> None:
        """Follow the store until cancelled. Store failures are retried after ``retry``."""
        while True:
            try:
                await self._follow()
            except* StoreError as group:
                log.warning("router: store failed (%s); re-reading in %ss",
                            group.exceptions[0], self._retry)
                self.last_error = group.exceptions[0]
            await self._clock.sleep(self._retry)

    async def sync(self) -> bool:
        """One full pass: read, compute, render, apply. True when nginx was reloaded.

        A config nginx refuses is logged (once per distinct config) and the old one keeps
        serving; it is tried again on the next pass (a taken port may have been freed)."""
        reads = [Op.get(prefix, prefix=True) for prefix in WATCHED_PREFIXES]
        result = await self._store.txn([], reads)  # one snapshot of both prefixes
        pairs = [(kv.key, kv.value) for response in result.responses for kv in response]
        state = state_from_kvs(pairs, http_port=self._proxy.http_port,
                               https_port=self._proxy.https_port,
                               default_global_domain=self._global_domain)
        self._report(state.problems)
        began = time.monotonic()
        try:
            live, changed = await self._apply(state)
        except (ValidationError, RouterError) as exc:
            metrics.ROUTER_RELOADS.inc(outcome="failed")
            if exc.message != getattr(self.last_error, "message", None):
                log.error("router: %s", exc)
            self.last_error = exc
            return False
        self.state, self.revision, self.last_error = live, result.revision, None
        if changed:
            self.reloads += 1
            metrics.ROUTER_RELOADS.inc(outcome="ok")
            metrics.ROUTER_RELOAD_SECONDS.observe(time.monotonic() - began)
            log.info("router: reloaded nginx for store revision %d", result.revision)
        if self._progress is not None:
            await self._progress.record(result.revision)
        return changed

    @property
    def excluded(self) -> dict[str, str]:
        """App -> why nginx refuses its routes, which are left out (:mod:`.isolate`)."""
        return dict(self._isolation.excluded)

    async def _apply(self, state: RouterState) -> tuple[RouterState, bool]:
        """Make ``state`` live less the apps whose routes nginx refuses on their own."""
        options = self._proxy.render_options
        admitted = self._isolation.admitted(state)
        try:
            return admitted, await self._proxy.apply(render(admitted, options),
                                                     admitted.tls_files)
        except ValidationError:
            if not await self._isolation.examine(admitted, self._proxy):
                raise  # no single app explains it: the previous config keeps serving
        admitted = self._isolation.admitted(state)
        return admitted, await self._proxy.apply(render(admitted, options), admitted.tls_files)

    async def _follow(self) -> None:
        dirty = asyncio.Event()
        watches: list[Watch] = []
        try:
            # Watch first, then read: a change between the two is seen by the watch.
            for prefix in WATCHED_PREFIXES:
                watches.append(await self._store.watch(prefix))
            async with asyncio.TaskGroup() as tasks:
                for watch in watches:
                    tasks.create_task(self._pump(watch, dirty))
                tasks.create_task(self._tick(dirty))
                if self._progress is not None:  # known (and waited for) before its 1st pass
                    await self._progress.record(0)
                await self.sync()
                while True:
                    await dirty.wait()
                    await self._clock.sleep(self._debounce)  # gather a burst into one pass
                    dirty.clear()
                    await self.sync()
        finally:
            for watch in watches:
                await watch.close()

    async def _pump(self, watch: Watch, dirty: asyncio.Event) -> None:
        async for _ in watch:
            dirty.set()
        raise StoreError("a router watch ended", hint="the controller watches again")

    async def _tick(self, dirty: asyncio.Event) -> None:
        while True:
            await self._clock.sleep(self._interval)
            dirty.set()

    def _report(self, problems: tuple[str, ...]) -> None:
        if problems != self._problems:
            for problem in problems:
                if problem not in self._problems:
                    log.warning("router: skipped %s", problem)
            self._problems = problems
