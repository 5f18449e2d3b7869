"""The per-machine agent: heartbeat, reconcile, report (fleet's agent, without systemd).

Three loops run under :meth:`Agent.run`:

- *heartbeat*: the machine record lives under a lease of ``agent_ttl`` seconds, renewed every
  TTL/3. When no renewal has succeeded for longer than the TTL (store unreachable), the lease
  is gone and the scheduler is moving the units: every unit here is stopped, so a cut-off
  machine does not keep duplicates running. It registers again when the store answers.
- *watch*: placements, target states and unit files under the registry prefix wake the
  reconciler; a broken watch is re-read and re-opened (and the reconciler re-reads every
  ``reconcile_interval`` anyway, since watches can miss events).
- *reconcile*: units placed here with target ``launched`` run (``.service`` by the
  :class:`~shipmate.agent.supervisor.Supervisor`, ``.container`` by
  :class:`~shipmate.agent.containers.ContainerUnits`); anything else here is stopped. Unit
  states are reported under the lease, and each unit's journal tail and status are published
  (:mod:`shipmate.agent.publish`) for ``fleet status`` and ``fleet journal`` on any machine;
  so are the router endpoints of routed container units (:mod:`shipmate.agent.endpoints`).

Cancelling :meth:`Agent.run` (daemon shutdown or restart) detaches: units keep running and
the next agent adopts them (same PIDs, same containers).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from shipmate.agent.capacity import machine_capacity
from shipmate.agent.containers import ContainerJob, ContainerUnits, ImageFetcher
from shipmate.agent.endpoints import EndpointWriter, unit_endpoints
from shipmate.agent.jobs import UnitJobs
from shipmate.agent.publish import Publisher
from shipmate.agent.reconcile import Heartbeat, LocalUnit, plan, units_for_machine
from shipmate.agent.service import parse_environment_file, service_config
from shipmate.agent.supervisor import Supervisor
from shipmate.clock import Clock, SystemClock, within
from shipmate.config import Config
from shipmate.engine.base import Engine
from shipmate.errors import (
    CompactedError,
    EngineUnavailableError,
    LeaseNotFoundError,
    ShipmateError,
    StoreError,
)
from shipmate.scheduler.model import Machine, UnitState, parse_metadata
from shipmate.scheduler.registry import DESIRED, PLACEMENTS, PREFIX, UNITS, Registry, Snapshot
from shipmate.spec.unitcontainer import container_spec, env_file_paths
from shipmate.spec.unitfile import parse
from shipmate.spec.unitshipmate import UnitRoute, unit_options
from shipmate.store.base import Store

log = logging.getLogger(__name__)
T = TypeVar("T")
_WATCHED = (PLACEMENTS, DESIRED, UNITS)
#: TTLs after the first registration during which an adopted unit that is placed nowhere is
#: left running: the scheduler may be placing it back here (the machine's lease expired while
#: the daemon restarted). A unit placed elsewhere, or no longer wanted, stops at once.
ADOPTION_GRACE = 3.0


class Agent:
    """Runs the units the scheduler places on this machine."""

    def __init__(self, store: Store, engine: Engine | None, config: Config, *,
                 clock: Clock | None = None, hostname: str | None = None,
                 fetcher: ImageFetcher | None = None) -> None:
        self.store = store
        self.registry = Registry(store)
        self.config = config
        self.clock: Clock = clock or SystemClock()
        cpus, memory = machine_capacity(config)
        self.machine = Machine(config.machine_id, config.public_ip,
                               parse_metadata(config.metadata or ""), cpus, memory)
        self.hostname = hostname or socket.gethostname()
        state = Path(config.state_dir) / "agent"
        self.supervisor = Supervisor(state, on_change=lambda _name: self._report_soon.set())
        self.containers = ContainerUnits(
            engine, config.machine_id, clock=self.clock, fetcher=fetcher,
            on_change=lambda _name: self._report_soon.set()) if engine else None
        self.heartbeat = Heartbeat(float(config.agent_ttl), self.clock.now())
        self.publisher = Publisher(store, config.machine_id)
        self.endpoints = EndpointWriter(store)
        self._routes: dict[str, UnitRoute] = {}  # container units that take traffic
        self.lease = 0
        self._lease_file = state / "lease"
        self._adopted: set[str] = set()
        self._grace_until: float | None = None
        self.mine: dict[str, LocalUnit] = {}  # placed here (loaded or launched)
        self.errors: dict[str, str] = {}  # units that could not be run here, why
        self._reported: dict[str, UnitState] = {}
        self._wake = asyncio.Event()
        self._report_soon = asyncio.Event()
        self._leaving = False  # `cluster leave`: never register again
        # Starts and stops run in the background, one job per unit: a slow stop (an app that
        # takes its whole stop timeout) or image fetch never delays another unit's start.
        self.jobs = UnitJobs(self._job_done)
        self._lock = asyncio.Lock()  # dispatching and the cut-off stop exclude each other

    @property
    def machine_id(self) -> str:
        """This machine's ID."""
        return str(self.machine.id)

    # --- the loops ------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled; on cancel, detach (units keep running)."""
        adopted = await self.supervisor.open()
        if self.containers is not None:
            with contextlib.suppress(ShipmateError):
                adopted += await self.containers.open()
        if adopted:
            log.info("adopted running units: %s", ", ".join(sorted(adopted)))
        self._adopted = set(adopted)
        loops = [self._heartbeat_loop(), self._watch_loop(), self._reconcile_loop(),
                 self._report_loop()]
        tasks = [asyncio.create_task(c) for c in loops]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.jobs.cancel_all()
            await self.supervisor.close()

    async def _bounded(self, aw: Awaitable[T]) -> T:
        """A store call that may not outlast half a TTL (a hung store is a lost store)."""
        return await within(aw, max(0.5, self.heartbeat.ttl / 2))

    async def _heartbeat_loop(self) -> None:
        hb = self.heartbeat
        while True:
            if self._leaving:
                await self.clock.sleep(hb.interval)
                continue
            try:
                if not hb.registered:
                    await self._register()
                else:
                    await self._bounded(self.store.keepalive(self.lease))
                hb.renewed(self.clock.now())
            except LeaseNotFoundError:
                log.warning("agent lease %x expired; registering again", self.lease)
                hb.lost()
                continue
            except (StoreError, TimeoutError, OSError) as exc:
                log.warning("heartbeat failed: %s", exc)
            if hb.cut_off(self.clock.now()):
                await self._cut_off()
            await self.clock.sleep(hb.interval)

    async def _register(self) -> None:
        """Publish the machine under a lease: the previous daemon's lease if it still lives
        (a quick restart is invisible to the scheduler), else a new one."""
        lease = self._saved_lease()
        if lease:
            try:
                await self._bounded(self.store.keepalive(lease))
            except LeaseNotFoundError:
                lease = 0
        self.lease = lease or await self._bounded(self.store.grant(self.heartbeat.ttl))
        with contextlib.suppress(OSError):
            self._lease_file.write_text(str(self.lease))
        if self._grace_until is None:
            self._grace_until = self.clock.now() + ADOPTION_GRACE * self.heartbeat.ttl
        await self._bounded(self.registry.register_machine(self.machine, self.lease))
        self._reported.clear()  # reports lived under the old lease
        self.publisher.reset()
        self.endpoints.reset()
        log.info("machine %s registered (lease %x)", self.machine_id, self.lease)
        self._wake.set()

    async def leave(self) -> list[str]:
        """This machine leaves the cluster (``cluster leave``): it stops registering, stops
        every unit here, and revokes its lease, so the scheduler places the units elsewhere
        at once instead of after the TTL. Returns the units that were placed here."""
        self._leaving = True
        was = sorted(self.mine)
        async with self._lock:
            self.heartbeat.lost()  # reconcile starts nothing from now on
            await self.jobs.cancel_all()
            await self.supervisor.stop_all()
            if self.containers is not None:
                await self.containers.stop_all()
        if self.lease:
            await self.store.revoke(self.lease)
        with contextlib.suppress(OSError):
            self._lease_file.unlink()
        log.info("machine %s left the cluster (units stopped: %s)", self.machine_id,
                 ", ".join(was) or "none")
        return was

    async def _cut_off(self) -> None:
        log.error("no heartbeat for more than %gs: stopping every unit on this machine",
                  self.heartbeat.ttl)
        async with self._lock:
            await self.jobs.cancel_all()
            await self.supervisor.stop_all()
            if self.containers is not None:
                await self.containers.stop_all()
        self._reported.clear()

    async def _watch_loop(self) -> None:
        while True:
            try:
                revision = await self.store.revision()
                watch = await self.store.watch(PREFIX, start_revision=revision + 1)
                async with watch:
                    self._wake.set()
                    async for event in watch:
                        if event.kv.key.startswith(_WATCHED):
                            self._wake.set()
            except (StoreError, CompactedError, OSError) as exc:
                log.debug("registry watch ended: %s", exc)
            await self.clock.sleep(min(1.0, self.heartbeat.interval))

    async def _reconcile_loop(self) -> None:
        interval = float(self.config.reconcile_interval)
        while True:
            try:
                await self.reconcile()
            except (StoreError, TimeoutError, OSError) as exc:
                log.warning("reconcile failed: %s", exc)
            await self._wait(self._wake, interval)

    async def _report_loop(self) -> None:
        while True:
            await self._wait(self._report_soon, 2.0)
            self.supervisor.journal.rotate_all()
            if self.heartbeat.registered:
                with contextlib.suppress(StoreError, TimeoutError, OSError):
                    await self.report()

    async def _wait(self, event: asyncio.Event, timeout: float) -> None:
        """Until ``event`` is set or ``timeout`` (clock time) passes; clears the event."""
        sleeper = asyncio.ensure_future(self.clock.sleep(timeout))
        waiter = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait([sleeper, waiter], return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waiter.cancel()
        event.clear()

    # --- one pass ---------------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Read the registry, start and stop units, report states (one pass)."""
        if not self.heartbeat.registered or not self.heartbeat.may_run_units:
            return
        snap = await self._bounded(self.registry.snapshot())
        mine = units_for_machine(
            self.machine_id, {n: (r.hash, r.text) for n, r in snap.units.items()},
            snap.desired, {n: p.machines for n, p in snap.placements.items()})
        wanted, builds = self._wanted(mine)
        running = self._running()
        actions = plan(wanted, running)
        # A container unit whose spec changed is replaced start-first by its start, not
        # stopped first (the old container serves until the new one passes its check).
        actions = dataclasses.replace(actions, stop=tuple(
            n for n in actions.stop if not self._in_grace(n, snap)
            and not (n in wanted and isinstance(builds.get(n), ContainerJob))))
        gone = [n for n in actions.stop if n not in mine and self.jobs.busy(n) is None]
        self.mine = mine
        for name in gone:  # vanish from the registry first: never active on two machines
            with contextlib.suppress(StoreError):
                await self._clear(name)
        async with self._lock:
            if not self.heartbeat.may_run_units:
                return
            for name in actions.stop:
                self.jobs.spawn(name, "stop", self._stop(name))
            for name in actions.start:
                self.jobs.spawn(name, "start", self._start(name, builds[name]))
        await self.report(stale=[s.unit for s in snap.states
                                 if s.machine == self.machine_id and s.unit not in mine])

    async def settle(self) -> None:
        """Until the starts and stops dispatched so far have ended (tests, shutdown)."""
        await self.jobs.wait()

    def _job_done(self, name: str) -> None:
        """A start or stop ended: report its state, and plan again (a unit skipped while
        its job ran may need the next step), but not at once after a failed start (that is
        retried by the next regular pass, not in a loop)."""
        self._report_soon.set()
        if name not in self.errors:
            self._wake.set()

    def _saved_lease(self) -> int:
        try:
            return int(self._lease_file.read_text().strip())
        except (OSError, ValueError):
            return 0

    def _in_grace(self, name: str, snap: Snapshot) -> bool:
        """True for an adopted unit the scheduler has not placed anywhere yet (but still
        wants running) shortly after this daemon started: keep it, it may come back here."""
        if name not in self._adopted:
            return False
        if self._grace_until is None or self.clock.now() > self._grace_until:
            self._adopted.clear()
            return False
        placement = snap.placements.get(name)
        if placement is not None and self.machine_id in placement.machines:
            self._adopted.discard(name)  # it is ours again
            return False
        return placement is None and snap.desired.get(name) in ("loaded", "launched")

    def _wanted(self, mine: dict[str, LocalUnit]) -> tuple[dict[str, str], dict[str, Any]]:
        wanted: dict[str, str] = {}
        builds: dict[str, Any] = {}
        for name, unit in mine.items():
            if unit.desired != "launched":
                continue
            try:
                build = self._build(unit)
            except ShipmateError as exc:
                self.errors[name] = exc.message
                continue
            self.errors.pop(name, None)
            builds[name] = build
            wanted[name] = build.digest
            route = build.options.route if isinstance(build, ContainerJob) else None
            if route is None:
                self._routes.pop(name, None)
            else:
                self._routes[name] = route
        return wanted, builds

    def _build(self, unit: LocalUnit) -> Any:
        """The ServiceConfig or ContainerJob a unit runs as on this machine."""
        unit_file = parse(unit.text)
        if unit.name.endswith(".container"):
            if self.containers is None:
                raise EngineUnavailableError(f"{unit.name}: no container engine on this machine")
            env: dict[str, str] = {}
            for path, optional in env_file_paths(unit_file, unit.name):
                try:
                    env.update(parse_environment_file(Path(path).read_text()))
                except OSError as exc:
                    if not optional:
                        raise ShipmateError(f"{unit.name}: EnvironmentFile={path}: "
                                            f"{exc.strerror}") from exc
            spec = container_spec(unit_file, unit.name, hostname=self.hostname,
                                  machine_id=self.machine_id, env_files=env)
            return ContainerJob(spec, unit_options(unit_file, unit.name, spec))
        return service_config(unit_file, unit.name, hostname=self.hostname,
                              machine_id=self.machine_id)

    def _running(self) -> dict[str, str]:
        running = {n: s.digest for n, s in self.supervisor.statuses().items()}
        if self.containers is not None:
            running.update({n: s.spec_hash for n, s in self.containers.statuses().items()})
        return running

    async def _start(self, name: str, build: Any) -> None:
        try:
            if isinstance(build, ContainerJob):
                assert self.containers is not None
                await self.containers.start(name, build)
            else:
                await self.supervisor.start(build)
            log.info("started %s", name)
        except ShipmateError as exc:
            self.errors[name] = exc.message
            log.warning("could not start %s: %s", name, exc)

    async def _stop(self, name: str) -> None:
        try:
            if name in self.supervisor.names():
                await self.supervisor.stop(name)
            elif self.containers is not None:
                await self.containers.stop(name)
            log.info("stopped %s", name)
        except ShipmateError as exc:
            log.warning("could not stop %s: %s", name, exc)

    # --- reporting ----------------------------------------------------------------------------

    def local_state(self, name: str) -> tuple[str, str]:
        """(ACTIVE, SUB) of a unit on this machine."""
        if name in self.errors:
            return "failed", "failed"
        st = self.supervisor.status(name)
        if st is not None:
            return st.active, st.sub
        cst = self.containers.status(name) if self.containers else None
        if cst is not None:
            return cst.active, cst.sub
        return "inactive", "dead"

    def _starting_state(self, name: str) -> tuple[str, str]:
        """(ACTIVE, SUB) of a unit whose start is under way: its image pull or replacement
        when there is one, never the state of what ran before."""
        pending = self.containers.pending(name) if self.containers else None
        return (pending.active, pending.sub) if pending else ("activating", "start")

    def local_detail(self, name: str) -> dict[str, Any] | None:
        """What ``fleet status`` shows for a unit that is here, or None."""
        base: dict[str, Any] = {"unit": name, "machine": self.machine_id,
                                "public_ip": self.machine.public_ip, "error": self.errors.get(name)}
        st = self.supervisor.status(name)
        if st is not None:
            return {**base, "kind": "service", **st.to_json()}
        cst = self.containers.status(name) if self.containers else None
        if cst is not None:
            return {**base, "kind": "container", **cst.to_json()}
        if name in self.mine or name in self.errors:
            active, sub = self.local_state(name)
            return {**base, "kind": "unit", "active": active, "sub": sub}
        return None

    async def report(self, stale: list[str] | None = None) -> None:
        """Publish changed unit states (under the lease), drop reports of units that left,
        and publish journal tails."""
        if self.containers is not None:
            with contextlib.suppress(ShipmateError):
                await self.containers.refresh()
        for name, unit in self.mine.items():
            # While its start is under way, a unit must not be reported with its new hash but
            # the old container's state (a waiter would take the old one for the new one).
            active, sub = self._starting_state(name) if self.jobs.busy(name) == "start" \
                else self.local_state(name)
            state = UnitState(name, self.machine_id, "loaded", active, sub, unit.hash)
            if self._reported.get(name) != state:
                await self._bounded(self.registry.report_state(state, self.lease))
                self._reported[name] = state
        for name in set(self._reported) - set(self.mine) | set(stale or ()):
            await self._clear(name)
        await self._publish_endpoints()
        await self.publisher.publish(self.mine, self.local_detail, self.journal_lines,
                                     self.lease)

    async def _publish_endpoints(self) -> None:
        """The router endpoints of the routed container units here (under the lease)."""
        if self.containers is None:
            return
        routes = {n: r for n, r in self._routes.items() if n in self.mine
                  and n not in self.errors}
        running = {n: info for n in routes
                   if (info := self.containers.container(n)) is not None}
        wanted = unit_endpoints(routes, running, self.machine.public_ip, self.machine_id)
        await self._bounded(self.endpoints.write(wanted, self.lease))

    async def journal_lines(self, name: str, lines: int = 50) -> list[str]:
        """The last ``lines`` lines of a unit that is here (service journal or container
        logs), empty if there is none."""
        if self.containers is not None and self.containers.status(name) is not None:
            try:
                return [line async for line in self.containers.logs(name, lines=lines)]
            except ShipmateError:
                return []
        if self.supervisor.journal.exists(name):
            return self.supervisor.journal.tail(name, lines)
        return []

    async def _clear(self, name: str) -> None:
        await self._bounded(self.registry.clear_state(name, self.machine_id))
        self._reported.pop(name, None)
        await self.publisher.clear(name)
