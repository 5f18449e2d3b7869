"""``.container`` units, run through the engine adapter and the one converge engine.

Every container this agent creates carries the unit's name (``shipmate.unit``, set by the
spec), this machine's ID (``shipmate.machine``) and the spec hash (``shipmate.spec-hash``,
set by the engine). Starting a unit whose container already runs with the same hash adopts
it (a restarted agent never recreates a healthy container). A different hash is replaced
as ``shipmate apply`` replaces (:class:`~shipmate.converge.replace.Replacer`): the new
container starts under a temporary name, passes its health gate (``HealthCmd=``, or stays
running for ``RunningFor=``), then the old one goes and the new one takes the name. That runs
in the background (the agent keeps reconciling other units); meanwhile the unit shows
``activating``. A failed gate keeps the old container serving and shows the unit ``failed``
with the reason; the same spec is not tried again until the unit changes or is restarted.

Machines that share one Docker engine (a local test cluster) only ever touch containers with
their own machine label, except a leftover of *the same unit* from another machine, which is
removed before the unit starts here: the scheduler placed the unit here, so that other copy
is a duplicate of a machine that went away.

A unit whose image is not here (an app image built on another machine) gets it through
:attr:`ContainerUnits.fetcher` (the daemon passes :class:`~shipmate.daemon.image_transfer.
PeerImages`) before its container is created; meanwhile the unit shows ``activating
start-pre`` with the pull's progress as its result, and a failed pull fails the unit.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Literal, Protocol

from shipmate import metrics
from shipmate.clock import Clock, SystemClock
from shipmate.converge.plan import Action, replace_strategy
from shipmate.converge.replace import NEXT, Outcome, Replacer, Target
from shipmate.engine.base import ContainerInfo, Engine
from shipmate.errors import EngineError, NotFoundError, ShipmateError
from shipmate.spec.container import SPEC_HASH_LABEL, ContainerSpec, spec_hash
from shipmate.spec.unitcontainer import UNIT_LABEL
from shipmate.spec.unitshipmate import UnitOptions

log = logging.getLogger(__name__)
MACHINE_LABEL = "shipmate.machine"


def _action(kind: Literal["create", "replace"], spec: ContainerSpec) -> Action:
    return Action(kind, spec.name, spec_hash=spec_hash(spec))


class ImageFetcher(Protocol):
    """Gets an image this machine lacks from elsewhere (another machine)."""

    async def fetch(self, ref: str, labels: Mapping[str, str],
                    progress: Callable[[str], None]) -> None:
        """Make ``ref`` present in the local engine; ``labels`` are the unit's (they may name
        the source); ``progress`` receives human-readable steps. Raises ShipmateError."""
        ...


@dataclasses.dataclass(frozen=True)
class ContainerStatus:
    """What ``list-units`` shows for a container unit."""

    name: str
    active: str
    sub: str
    container_id: str = ""
    spec_hash: str = ""
    since: float = 0.0
    result: str = ""
    error: str = ""  # why the last replacement failed (its report, log tail included)

    def to_json(self) -> dict[str, object]:
        """JSON-able form for the API (``error`` only when there is one)."""
        data = dataclasses.asdict(self)
        if not self.error:
            del data["error"]
        return data


def container_state(info: ContainerInfo | None) -> tuple[str, str, str]:
    """systemd-style (ACTIVE, SUB, result) for an engine's container state (pure)."""
    if info is None:
        return "inactive", "dead", ""
    if info.state == "running":
        if info.health == "starting":
            return "activating", "start", ""
        return "active", "running", ""
    if info.state == "created":
        return "activating", "start", ""
    if info.state == "restarting":
        return "activating", "auto-restart", f"code=exited, status={info.exit_code}"
    if info.state == "paused":
        return "active", "running", "paused"
    result = f"code=exited, status={info.exit_code}"
    if info.state == "exited" and info.exit_code == 0:
        return "inactive", "dead", result
    return "failed", "failed", result


@dataclasses.dataclass(frozen=True)
class ContainerJob:
    """What the agent runs for a ``.container`` unit: the spec and its ``[X-Shipmate]``
    options (health gate, route)."""

    spec: ContainerSpec
    options: UnitOptions = dataclasses.field(default_factory=UnitOptions)

    @property
    def digest(self) -> str:
        """What identifies how it runs (a change replaces the container)."""
        return spec_hash(self.spec)

    @property
    def target(self) -> Target:
        """What the replacer converges."""
        return Target(self.spec, running_for=self.options.running_for, wait=self.options.wait)


def choose(found: Sequence[ContainerInfo], spec: ContainerSpec,
           want: str) -> tuple[ContainerInfo | None, ContainerInfo | None]:
    """(current, old) among a unit's containers on this machine (pure). ``current`` runs
    ``want`` already (adopt it); else ``old`` is the running one to replace, the one holding
    the unit's container name first (another is a leftover of an interrupted replacement)."""
    by_name = sorted(found, key=lambda c: (c.name != spec.name, not c.running, c.id))
    same = [c for c in by_name if c.labels.get(SPEC_HASH_LABEL) == want]
    others = [c for c in by_name if c not in same]
    if same and (same[0].name == spec.name or not any(c.running for c in others)):
        return same[0], None
    old = next((c for c in others if c.running), None)
    return None, old


class ContainerUnits:
    """Runs, adopts, replaces, reports and removes this machine's container units."""

    def __init__(self, engine: Engine, machine_id: str, *, stop_timeout: float = 10.0,
                 clock: Clock | None = None, on_change: Callable[[str], None] | None = None,
                 poll: float = 0.5, fetcher: ImageFetcher | None = None) -> None:
        self.engine = engine
        self.machine_id = machine_id
        self.stop_timeout = stop_timeout
        self.on_change = on_change or (lambda _unit: None)
        #: Fetches missing images from other machines (None: a missing image fails the
        #: create as the engine reports it).
        self.fetcher = fetcher
        self.replacer = Replacer(engine, clock or SystemClock(), self._say, poll)
        self._status: dict[str, ContainerStatus] = {}
        self._info: dict[str, ContainerInfo] = {}  # the container each unit is served by
        self._pulling: dict[str, ContainerStatus] = {}  # units waiting for their image
        self._pulls: dict[str, asyncio.Task[None]] = {}  # one transfer per image
        self._notes: dict[str, list[str]] = {}  # pull and replacement steps, the unit's log
        self._held: dict[str, ContainerStatus] = {}  # replacing, or a failed replacement
        self._replacing: dict[str, asyncio.Task[None]] = {}
        self._restarts: dict[str, int] = {}  # container ID -> Docker's RestartCount seen

    def names(self) -> set[str]:
        """Container units known here."""
        return set(self._status) | set(self._pulling) | set(self._held)

    def status(self, name: str) -> ContainerStatus | None:
        """The unit's last known status."""
        return self._held.get(name) or self._status.get(name) or self._pulling.get(name)

    def pending(self, name: str) -> ContainerStatus | None:
        """The unit's image pull or replacement under way, if any (not a failed one)."""
        held = self._held.get(name)
        if held is not None and held.active != "failed":
            return held
        return self._pulling.get(name)

    def statuses(self) -> dict[str, ContainerStatus]:
        """Every container unit's last known status."""
        return {**self._pulling, **self._status, **self._held}

    def container(self, name: str) -> ContainerInfo | None:
        """The container that serves the unit now (the old one while it is replaced)."""
        return self._info.get(name)

    async def open(self) -> list[str]:
        """Find this machine's containers (after a daemon restart); returns the unit names."""
        await self.refresh()
        return sorted(self._status)

    async def refresh(self) -> None:
        """Re-read the state of this machine's containers from the engine."""
        found = await self.engine.list({MACHINE_LABEL: self.machine_id})
        by_unit: dict[str, list[ContainerInfo]] = {}
        for info in found:
            unit = info.labels.get(UNIT_LABEL)
            if unit:
                by_unit.setdefault(unit, []).append(info)
        seen: dict[str, ContainerStatus] = {}
        infos: dict[str, ContainerInfo] = {}
        for unit, infos_of in by_unit.items():
            # The one holding a real name and running serves; a replacement's new container
            # (temporary name) does not until it has taken the name.
            info = sorted(infos_of, key=lambda c: (NEXT in c.name, not c.running, c.id))[0]
            seen[unit] = self._describe(unit, info, self._status.get(unit))
            infos[unit] = info
        self._status, self._info = seen, infos
        self._count_restarts(found)

    def _count_restarts(self, found: Sequence[ContainerInfo]) -> None:
        """Docker restarts a container unit by its ``Restart=`` policy on its own; the growth
        of its ``RestartCount`` between two looks is what it restarted (a container seen for
        the first time, e.g. after a daemon restart, counts from then on)."""
        counts = {info.id: int(info.raw.get("RestartCount") or 0) for info in found}
        for cid, count in counts.items():
            grew = count - self._restarts.get(cid, count)
            if grew > 0:
                metrics.AGENT_UNIT_RESTARTS.inc(grew, kind="container")
        self._restarts = counts

    def _describe(self, unit: str, info: ContainerInfo | None,
                  previous: ContainerStatus | None) -> ContainerStatus:
        active, sub, result = container_state(info)
        since = previous.since if previous and (previous.active, previous.sub) == (active, sub) \
            else time.time()
        return ContainerStatus(unit, active, sub, info.id if info else "",
                               info.labels.get(SPEC_HASH_LABEL, "") if info else "", since,
                               result)

    async def _mine(self, unit: str) -> list[ContainerInfo]:
        return await self.engine.list({UNIT_LABEL: unit, MACHINE_LABEL: self.machine_id})

    async def start(self, unit: str, job: ContainerJob | ContainerSpec) -> ContainerStatus:
        """Make ``unit`` run the job's spec: adopt a container with the same spec hash
        (starting it if it is stopped), replace a running one with another hash (health-gated,
        in the background), create one if none runs. The agent calls this once per placement
        (or hash change), so an exited container stays exited between calls, as a
        ``Restart=no`` service would."""
        job = job if isinstance(job, ContainerJob) else ContainerJob(job)
        spec, want = job.spec, job.digest
        await self._cancel(unit)
        held = self._held.get(unit)
        if held is not None and held.active == "failed" and held.spec_hash == want:
            return held  # this spec failed its gate: not again until the unit changes
        self._held.pop(unit, None)
        found = await self._mine(unit)
        current, old = choose(found, spec, want)
        for info in found:
            if info is not current and info is not old:
                await self._remove(info.id)
        if current is not None:
            return await self._adopt(unit, current, spec)
        await self._ensure_image(unit, spec, want)
        await self._remove_strays(unit, spec.name, keep=old)
        if old is not None:
            self._begin_replace(unit, job, old)
            return await self._settled(unit, old.id)
        created = await self.replacer.create(_action("create", spec), job.target,
                                             {MACHINE_LABEL: self.machine_id}, gated=False)
        self._restarts[created.container_id] = 0  # new: every restart from now on counts
        return await self._settled(unit, created.container_id)

    async def _adopt(self, unit: str, info: ContainerInfo, spec: ContainerSpec) -> ContainerStatus:
        if info.name != spec.name:  # a replacement was cut short after the old one went
            await self.engine.rename(info.id, spec.name)
        if not info.running and info.state != "restarting":
            await self.engine.start(info.id)  # created (agent died in between) or stopped
        return await self._settled(unit, info.id)

    async def _settled(self, unit: str, cid: str) -> ContainerStatus:
        """Record ``cid`` as the container serving ``unit``; the unit's status now."""
        info = await self.engine.inspect(cid)
        status = self._describe(unit, info, self._status.get(unit))
        self._status[unit] = status
        if info is not None:
            self._info[unit] = info
        return self._held.get(unit) or status

    def _begin_replace(self, unit: str, job: ContainerJob, old: ContainerInfo) -> None:
        strategy, why = replace_strategy(job.spec, old, job.options.replace)
        action = dataclasses.replace(_action("replace", job.spec), container_id=old.id,
                                     strategy=strategy, reason="its unit changed"
                                     + (f" ({why})" if why else ""))
        self._held[unit] = ContainerStatus(
            unit, "activating", "start", old.id, job.digest, time.time(),
            f"replacing {old.id[:12]} ({strategy}): the new container must pass its check")
        task = asyncio.ensure_future(self._replace(unit, job, action))
        self._replacing[unit] = task
        task.add_done_callback(lambda t: self._replacing.pop(unit, None)
                               if self._replacing.get(unit) is t else None)

    async def _replace(self, unit: str, job: ContainerJob, action: Action) -> None:
        self._note(unit, f"replace {job.spec.name}: {action.reason}")
        try:
            outcome = await self.replacer.replace(action, job.target,
                                                  {MACHINE_LABEL: self.machine_id})
        except ShipmateError as exc:
            outcome = Outcome(action, False, f"{job.spec.name}: {exc.message}",
                              action.container_id)
        except Exception as exc:  # a bug must not leave the unit "activating" for ever
            log.exception("replacing %s", unit)
            outcome = Outcome(action, False, f"{job.spec.name}: {exc!r}", action.container_id)
        if outcome.ok:
            self._held.pop(unit, None)
        else:
            first = outcome.message.partition("\n")[0]
            log.warning("%s: %s", unit, first)
            self._note(unit, outcome.message)
            self._held[unit] = ContainerStatus(unit, "failed", "failed", outcome.container_id,
                                               job.digest, time.time(), first,
                                               error=outcome.message)
        with contextlib.suppress(ShipmateError):
            await self._settled(unit, outcome.container_id)
        self.on_change(unit)

    async def _cancel(self, unit: str) -> None:
        """End a replacement in flight (the unit changed again, or stops)."""
        task = self._replacing.pop(unit, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ShipmateError):
                await task

    def _say(self, message: str) -> None:
        log.info("%s", message)

    def _note(self, unit: str, step: str) -> None:
        notes = self._notes.setdefault(unit, [])
        notes.extend(f"{time.strftime('%H:%M:%S')} {line}" for line in step.splitlines())
        del notes[:-20]

    async def _ensure_image(self, unit: str, spec: ContainerSpec, want: str) -> None:
        """Fetch the spec's image from another machine when it is not here."""
        if self.fetcher is None or await self.engine.image(spec.image) is not None:
            return
        notes = self._notes.setdefault(unit, [])

        def progress(step: str) -> None:
            notes.append(f"{time.strftime('%H:%M:%S')} {step}")
            del notes[:-20]
            self._pulling[unit] = ContainerStatus(unit, "activating", "start-pre", "", want,
                                                  since, step)

        since = time.time()
        progress(f"image {spec.image[:19]} is not on {self.machine_id}: fetching it")
        task = self._pulls.get(spec.image)
        if task is None:  # units sharing an image share its transfer
            task = asyncio.ensure_future(self.fetcher.fetch(
                spec.image, dict(spec.labels), progress))
            self._pulls[spec.image] = task
            task.add_done_callback(lambda _t: self._pulls.pop(spec.image, None))
        try:
            await asyncio.shield(task)
        except ShipmateError as exc:
            progress(f"failed: {exc.message}")
            raise
        finally:
            self._pulling.pop(unit, None)

    async def _remove_strays(self, unit: str, container_name: str, *,
                             keep: ContainerInfo | None) -> None:
        """Another machine's copy of this unit, or a container squatting its name (but not
        ``keep``, the container about to be replaced)."""
        for info in await self.engine.list({UNIT_LABEL: unit}):
            if keep is not None and info.id == keep.id:
                continue
            log.warning("removing %s's container %s left by machine %s", unit, info.id[:12],
                        info.labels.get(MACHINE_LABEL, "?"))
            await self._remove(info.id)
        existing = await self.engine.inspect(container_name)
        if existing is not None and existing.labels.get(UNIT_LABEL) == unit \
                and (keep is None or existing.id != keep.id):
            await self._remove(existing.id)

    async def _remove(self, cid: str) -> None:
        with contextlib.suppress(NotFoundError):
            await self.engine.stop(cid, timeout=self.stop_timeout)
        await self.engine.remove(cid, force=True)

    async def stop(self, unit: str) -> None:
        """Stop and remove the unit's container(s), a replacement in flight included."""
        await self._cancel(unit)
        for info in await self._mine(unit):
            await self._remove(info.id)
        for table in (self._status, self._info, self._held, self._notes):
            table.pop(unit, None)

    async def stop_all(self) -> None:
        """Stop every container unit of this machine."""
        for unit in sorted(self.names()):
            try:
                await self.stop(unit)
            except EngineError as exc:
                log.warning("could not stop %s: %s", unit, exc)

    async def logs(self, unit: str, *, lines: int = 10,
                   follow: bool = False) -> AsyncIterator[str]:
        """The unit's container output (after a failed replacement: the old container's,
        then what the replacement left in the unit's notes)."""
        status = self.status(unit)
        if status is not None and status.error and status.container_id and not follow:
            async for line in self.engine.logs(status.container_id, tail=lines):
                yield line
            for line in self._notes.get(unit, [])[-lines:]:
                yield line
            return
        if (status is None or not status.container_id) and unit in self._notes:
            for line in self._notes[unit][-lines:]:  # no container yet: the image pull
                yield line
            return
        if status is None or not status.container_id:
            raise NotFoundError(f"no container for {unit} on this machine")
        async for line in self.engine.logs(status.container_id, follow=follow, tail=lines):
            yield line
