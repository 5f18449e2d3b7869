"""The scheduler engine: one per daemon, only the elected leader acts (I/O).

While leader, the engine keeps a :class:`~shipmate.scheduler.view.View` of the registry and a
:class:`~shipmate.scheduler.placement.Planner`: one read when it takes over (and every
``reconcile_interval`` seconds of quiet, since watches can miss events), then the watch's
events. A pass hands the events to the planner and writes only what changed: a unit file, a
target state or a machine costs the re-placement of the units it touches, not a pass over
every unit. Placements and waiting reasons are written in batched compare-and-swap
transactions, each fenced by the leader key's revision, so a deposed leader writes nothing;
an entry whose unit, target state or placement changed since it was planned fails its
compare, and the next pass re-reads everything and plans it again.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Sequence

from shipmate import metrics
from shipmate.clock import Clock, SystemClock
from shipmate.errors import StoreError
from shipmate.scheduler.election import Election, Leadership
from shipmate.scheduler.model import dumps
from shipmate.scheduler.placement import Action, Planner
from shipmate.scheduler.registry import (
    DESIRED,
    LEADER_KEY,
    MACHINES,
    PREFIX,
    UNITS,
    Registry,
    desired_key,
    placement_key,
    unit_key,
    waiting_key,
)
from shipmate.scheduler.tasks import cancel_all, first
from shipmate.scheduler.view import PREFIXES, View
from shipmate.store.base import Compare, Event, Op, Store

log = logging.getLogger(__name__)

_TRIGGERS = (UNITS, DESIRED, MACHINES)
#: Events a pass plans on the loop itself; more (a burst of submits) go to a thread.
INLINE_EVENTS = 500
#: More actions than this in one pass are logged as one summary line.
LOGGED_ACTIONS = 50


@dataclasses.dataclass(frozen=True)
class Write:
    """One entry the leader writes: ``value`` at ``key`` (None: delete), under ``compares``."""

    key: str
    value: tuple[str, ...] | str | None
    compares: tuple[Compare, ...]

    def op(self) -> Op:
        """The transaction operation."""
        if self.value is None:
            return Op.delete(self.key)
        unit = self.key.rpartition("/")[2]
        if isinstance(self.value, tuple):
            # Placement(unit, machines).to_json() as dumps() writes it (keys in order), made
            # directly: a first pass writes one per unit.
            return Op.put(self.key, json.dumps({"machines": list(self.value), "unit": unit},
                                               separators=(",", ":")).encode())
        return Op.put(self.key, dumps({"reason": self.value}))


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
        #: Why each waiting unit is not placed, as of the last pass.
        self.waiting: dict[str, str] = {}
        self.reconciles = 0
        #: Store revisions, for tests and reports: the last event the watch judged, and the
        #: last one that asked for a pass.
        self.watched_revision = self.triggered_revision = 0
        self._reconciling = False
        self._dirty = asyncio.Event()
        self._machines_seen: dict[str, bytes] = {}
        self._events: list[Event] = []  # from the watch, for the next pass
        self._own: set[int] = set()  # revisions of our own transactions (their echo is known)
        self._view: View | None = None
        self._planner = Planner()
        self._reread = True  # the next pass reads everything (start, timer, a failed write)

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
        self._forget()  # the watch asks for the first pass once it is open
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
            self._forget()

    def _forget(self) -> None:
        """Drop what this engine knew: whoever leads next reads everything again."""
        self._view, self._planner, self._events, self._reread = None, Planner(), [], True
        self._own = set()

    @property
    def idle(self) -> bool:
        """No reconcile pass runs or is due (the watch may still have events to judge)."""
        return not self._reconciling and not self._dirty.is_set()

    async def _reconcile_loop(self, leadership: Leadership) -> None:
        while True:
            await first(self._dirty.wait(), self.clock.sleep(self.reconcile_interval))
            if not self._dirty.is_set():
                self._reread = True  # quiet for a whole interval: re-read everything
            self._reconciling = True
            self._dirty.clear()
            try:
                await self.reconcile_once(leadership)
            except StoreError as exc:
                log.warning("scheduler reconcile failed: %s", exc)
                self._reread = True
            finally:
                self._reconciling = False

    async def _watch_loop(self) -> None:
        while True:
            try:
                start = await self.store.revision() + 1
                async with await self.store.watch(PREFIX, start_revision=start) as watch:
                    self.triggered_revision = start - 1
                    self._reread = True  # events before the watch started may be missed
                    self._dirty.set()
                    async for event in watch:
                        if event.revision not in self._own and event.kv.key.startswith(
                                PREFIXES):
                            self._events.append(event)
                        if self._relevant(event):
                            self.triggered_revision = event.revision
                            self._dirty.set()
                        self.watched_revision = event.revision
            except StoreError as exc:
                log.warning("scheduler watch broke (%s); re-reading", exc)
                self._reread = True
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

    async def reconcile_once(self, leadership: Leadership) -> tuple[Action, ...]:
        """One pass: take in what changed (or read everything), plan, write the placements
        and waiting reasons that changed. Returns the actions. Raises Deposed."""
        with metrics.SCHEDULER_RECONCILE_SECONDS.time():
            return await self._reconcile(leadership)

    async def _reconcile(self, leadership: Leadership) -> tuple[Action, ...]:
        whole = self._reread or self._view is None
        if whole:
            view = await self._read(leadership)
        else:
            assert self._view is not None
            view = self._view
        # Our own writes echo back; those that came before the write returned go here.
        own = self._own
        events = [e for e in self._events if e.revision not in own]
        self._events = []
        if len(events) > INLINE_EVENTS or whole:
            actions, waiting = await asyncio.to_thread(self._plan, view, events, whole)
        else:
            actions, waiting = self._plan(view, events, whole)
        writes = self._writes(view, actions, waiting, whole)
        _log(actions)
        await self._apply(writes, leadership)
        for kind, n in collections.Counter(type(a).__name__.lower() for a in actions).items():
            metrics.SCHEDULER_PLACEMENTS.inc(n, action=kind)
        self.waiting = waiting
        self.reconciles += 1
        return actions

    async def _read(self, leadership: Leadership) -> View:
        """Read the registry at one revision; check we still lead; start a fresh planner."""
        res = await self.store.txn(
            [], [*(Op.get(p, prefix=True) for p in PREFIXES), Op.get(LEADER_KEY)])
        leader = res.responses[-1]
        mod = leader[0].mod_revision if leader else 0
        if mod != leadership.revision:
            raise Deposed(f"leader key revision is {mod}")
        kvs = [kv for found in res.responses[:-1] for kv in found]
        view = await asyncio.to_thread(View.load, kvs, res.revision, self._view)
        self._machines_seen = {MACHINES + m: dumps(r.to_json())
                               for m, r in view.machines.items()}
        self._view, self._reread = view, False
        self._events = [e for e in self._events if e.revision > res.revision]
        return view

    def _plan(self, view: View, events: Sequence[Event],
              fresh: bool) -> tuple[tuple[Action, ...], dict[str, str]]:
        if fresh:
            self._planner = view.planner()
        for event in events:
            view.apply(event, self._planner)
        return self._planner.replan()

    def _writes(self, view: View, actions: Sequence[Action], waiting: dict[str, str],
                whole: bool) -> list[Write]:
        """What differs between the plan and the store, with the compares that make each
        entry stand only on what it was planned from."""
        units = set(view.placements) | set(self._planner.placements()) if whole else {
            a.unit for a in actions}
        mods, placement_of, stored = view.mods, self._planner.placement, view.placements
        out: list[Write] = []
        for unit in sorted(units):
            want = placement_of(unit)
            if want == tuple(sorted(stored.get(unit, ()))):
                continue
            key = placement_key(unit)
            compares = [Compare.mod_is(key, mods.get(key, 0))]
            if want:
                ukey, dkey = unit_key(unit), desired_key(unit)
                compares += [Compare.mod_is(ukey, mods.get(ukey, 0)),
                             Compare.mod_is(dkey, mods.get(dkey, 0))]
            out.append(Write(key, want or None, tuple(compares)))
        for unit in sorted(set(waiting) | set(view.waiting)):
            reason = waiting.get(unit)
            if reason == view.waiting.get(unit):
                continue
            key = waiting_key(unit)
            compares = [Compare.mod_is(key, mods.get(key, 0))]
            if reason is not None:
                compares.append(Compare.mod_is(unit_key(unit), mods.get(unit_key(unit), 0)))
            out.append(Write(key, reason, tuple(compares)))
        return out

    async def _apply(self, writes: Sequence[Write], leadership: Leadership) -> None:
        """Write in transactions as large as the store takes; a batch whose compares fail is
        split until the entries that no longer hold are found (dropped: the next pass reads
        everything again and plans them anew)."""
        room = max(1, self.store.max_txn_ops - 1)
        batch: list[Write] = []
        size = 0
        for write in writes:
            if batch and size + len(write.compares) > room:
                await self._commit(batch, leadership)
                batch, size = [], 0
            batch.append(write)
            size += len(write.compares)
        if batch:
            await self._commit(batch, leadership)

    async def _commit(self, batch: Sequence[Write], leadership: Leadership) -> None:
        if await self._write(batch, leadership):
            return
        kv = await self.store.get(LEADER_KEY)
        if kv is None or kv.mod_revision != leadership.revision:
            raise Deposed("leader key changed during reconcile")
        if len(batch) == 1:
            log.info("scheduler: %s changed while it was planned; planning again", batch[0].key)
            self._reread = True
            self._dirty.set()
            return
        half = len(batch) // 2
        await self._commit(batch[:half], leadership)
        await self._commit(batch[half:], leadership)

    async def _write(self, batch: Sequence[Write], leadership: Leadership) -> bool:
        compares = [leadership.fence()]
        for write in batch:
            compares.extend(write.compares)
        res = await self.store.txn(compares, [w.op() for w in batch])
        if res.succeeded and self._view is not None:
            if len(self._own) > 1000:
                self._own = {r for r in self._own if r > self._view.revision}
            self._own.add(res.revision)  # a revision is one transaction: all of it is ours
            for write in batch:
                self._view.wrote(write.key, write.value, res.revision)
        return res.succeeded


def _log(actions: Sequence[Action]) -> None:
    if len(actions) > LOGGED_ACTIONS:
        counts = collections.Counter(type(a).__name__.lower() for a in actions)
        log.info("scheduler: %s", ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
        return
    for action in actions:
        log.info("scheduler: %s %s on %s (%s)", type(action).__name__.lower(), action.unit,
                 action.machine, action.reason)
