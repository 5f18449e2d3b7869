"""The scheduler engine: one per daemon, only the elected leader acts (I/O).

While leader, the engine re-reads the registry and applies :func:`placement.plan`'s result
whenever a unit file, a desired state or a machine changes (prefix watch) and every
``reconcile_interval`` seconds anyway (watches can miss events). Placements are written with
compare-and-swap transactions, each fenced by the leader key's revision, so a deposed leader
writes nothing and a placement computed from a stale read is dropped (the next pass redoes it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from shipmate import metrics
from shipmate.clock import Clock, SystemClock
from shipmate.errors import StoreError
from shipmate.scheduler.election import Election, Leadership
from shipmate.scheduler.model import Placement, dumps
from shipmate.scheduler.placement import Plan, plan
from shipmate.scheduler.registry import (
    DESIRED,
    LEADER_KEY,
    MACHINES,
    PREFIX,
    UNITS,
    Registry,
    Snapshot,
    desired_key,
    placement_key,
    unit_key,
)
from shipmate.scheduler.tasks import cancel_all, first
from shipmate.store.base import Compare, Event, Op, Store

log = logging.getLogger(__name__)

#: Units per placement transaction: 1 + 3 per unit compares stay under etcd's default
#: --max-txn-ops of 128.
BATCH = 40
_TRIGGERS = (UNITS, DESIRED, MACHINES)


class Deposed(Exception):
    """This engine is no longer the leader (its fencing revision no longer holds)."""


#: A loop that runs on the leader only, for as long as it leads (cancelled when it stops),
#: given the leadership to fence its writes with; it must not return or raise while leading.
LeaderTask = Callable[[Leadership], Awaitable[None]]


class SchedulerEngine:
    """Leader election + reconcile loop. ``await run()`` until cancelled.

    ``leader_tasks`` run beside the reconcile loop while this engine leads (the PaaS's cron
    loop is one)."""

    def __init__(self, store: Store, machine_id: str, *, clock: Clock | None = None,
                 ttl: float = 3.0, reconcile_interval: float = 5.0,
                 leader_tasks: Sequence[LeaderTask] = ()) -> None:
        self.store = store
        self.leader_tasks = tuple(leader_tasks)
        self.machine_id = machine_id
        self.clock: Clock = clock or SystemClock()
        self.reconcile_interval = reconcile_interval
        self.registry = Registry(store)
        self.election = Election(store, machine_id, ttl=ttl, clock=self.clock)
        self.leadership: Leadership | None = None
        self.last_plan: Plan | None = None
        self.reconciles = 0
        #: Store revisions, for tests and reports: the last event the watch judged, and the
        #: last one that asked for a pass.
        self.watched_revision = self.triggered_revision = 0
        self._reconciling = False
        self._dirty = asyncio.Event()
        self._machines_seen: dict[str, bytes] = {}

    @property
    def is_leader(self) -> bool:
        """True while this engine holds the leadership."""
        return self.leadership is not None

    async def run(self) -> None:
        """Campaign, lead while elected, campaign again when deposed; until cancelled
        (then resign, so another machine takes over at once)."""
        while True:
            leadership = await self.election.acquire()
            self.leadership = leadership
            try:
                failed = await self._lead(leadership)
            finally:
                self.leadership = None
                await asyncio.shield(self.election.resign(leadership))
            if failed:  # let another machine lead rather than flap on a persistent fault
                await self.clock.sleep(self.election.ttl)

    async def _lead(self, leadership: Leadership) -> bool:
        """Lead until deposed; True if it ended because of an unexpected error."""
        self._dirty.set()
        tasks: list[asyncio.Future[object]] = [
            asyncio.ensure_future(self.election.hold(leadership)),
            asyncio.ensure_future(self._reconcile_loop(leadership)),
            asyncio.ensure_future(self._watch_loop()),
        ]
        tasks += [asyncio.ensure_future(task(leadership)) for task in self.leader_tasks]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            failed = False
            for task in done:
                exc = None if task.cancelled() else task.exception()
                if exc is not None and not isinstance(exc, Deposed):
                    log.error("scheduler engine task failed: %r", exc, exc_info=exc)
                    failed = True
            return failed
        finally:
            await cancel_all(tasks)

    @property
    def idle(self) -> bool:
        """No reconcile pass runs or is due (the watch may still have events to judge)."""
        return not self._reconciling and not self._dirty.is_set()

    async def _reconcile_loop(self, leadership: Leadership) -> None:
        while True:
            self._reconciling = True
            self._dirty.clear()
            try:
                await self.reconcile_once(leadership)
            except StoreError as exc:
                log.warning("scheduler reconcile failed: %s", exc)
            finally:
                self._reconciling = False
            await first(self._dirty.wait(), self.clock.sleep(self.reconcile_interval))

    async def _watch_loop(self) -> None:
        while True:
            try:
                start = await self.store.revision() + 1
                async with await self.store.watch(PREFIX, start_revision=start) as watch:
                    self.triggered_revision = start - 1
                    self._dirty.set()  # events before the watch started may be missed
                    async for event in watch:
                        if self._relevant(event):
                            self.triggered_revision = event.revision
                            self._dirty.set()
                        self.watched_revision = event.revision
            except StoreError as exc:
                log.warning("scheduler watch broke (%s); re-reading", exc)
                self._dirty.set()
                await self.clock.sleep(min(1.0, self.reconcile_interval))

    def _relevant(self, event: Event) -> bool:
        key = event.kv.key
        if not key.startswith(_TRIGGERS):
            return False
        if key.startswith(MACHINES):
            # Heartbeats that re-put an unchanged record must not cost a reconcile each.
            old = self._machines_seen.get(key)
            if event.type == "put":
                self._machines_seen[key] = event.kv.value
                return old != event.kv.value
            self._machines_seen.pop(key, None)
        return True

    async def reconcile_once(self, leadership: Leadership) -> Plan:
        """Read everything, plan, write the placements that changed. Raises Deposed."""
        with metrics.SCHEDULER_RECONCILE_SECONDS.time():
            return await self._reconcile(leadership)

    async def _reconcile(self, leadership: Leadership) -> Plan:
        snap = await self.registry.snapshot()
        if snap.mod(LEADER_KEY) != leadership.revision:
            raise Deposed(f"leader key revision is {snap.mod(LEADER_KEY)}")
        self._machines_seen = {MACHINES + m: dumps(r.to_json()) for m, r in snap.machines.items()}
        current = {u: p.machines for u, p in snap.placements.items()}
        result = await asyncio.to_thread(
            plan, {n: r.requirements for n, r in snap.units.items()}, snap.desired,
            sorted(snap.machines.values(), key=lambda m: m.id), current)
        changes = sorted(
            (u, result.placements.get(u, ()))
            for u in set(current) | set(result.placements)
            if tuple(sorted(current.get(u, ()))) != result.placements.get(u, ())
        )
        for action in result.actions:
            log.info("scheduler: %s %s on %s (%s)", type(action).__name__.lower(), action.unit,
                     action.machine, action.reason)
        await self._apply(snap, changes, leadership)
        for action in result.actions:
            metrics.SCHEDULER_PLACEMENTS.inc(action=type(action).__name__.lower())
        self.last_plan = result
        self.reconciles += 1
        return result

    async def _apply(self, snap: Snapshot, changes: Sequence[tuple[str, tuple[str, ...]]],
                     leadership: Leadership) -> None:
        for start in range(0, len(changes), BATCH):
            batch = changes[start:start + BATCH]
            if await self._write(snap, batch, leadership):
                continue
            kv = await self.store.get(LEADER_KEY)
            if kv is None or kv.mod_revision != leadership.revision:
                raise Deposed("leader key changed during reconcile")
            for item in batch:  # something changed under us: save what still holds
                if not await self._write(snap, [item], leadership):
                    self._dirty.set()

    async def _write(self, snap: Snapshot, batch: Sequence[tuple[str, tuple[str, ...]]],
                     leadership: Leadership) -> bool:
        compares = [leadership.fence()]
        ops = []
        for unit, machines in batch:
            key = placement_key(unit)
            compares.append(Compare.mod_is(key, snap.mod(key)))
            if machines:
                compares.append(Compare.mod_is(unit_key(unit), snap.mod(unit_key(unit))))
                compares.append(Compare.mod_is(desired_key(unit), snap.mod(desired_key(unit))))
                ops.append(Op.put(key, dumps(Placement(unit, machines).to_json())))
            else:
                ops.append(Op.delete(key))
        res = await self.store.txn(compares, ops)
        return res.succeeded
