"""``.container`` units, run through the engine adapter.

Every container this agent creates carries the unit's name (``shipmate.unit``, set by the
spec), this machine's ID (``shipmate.machine``) and the spec hash (``shipmate.spec-hash``,
set by the engine). Starting a unit whose container already runs with the same hash adopts
it (a restarted agent never recreates a healthy container); a different hash replaces it.

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
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Protocol

from shipmate.engine.base import ContainerInfo, Engine
from shipmate.errors import EngineError, NotFoundError, ShipmateError
from shipmate.spec.container import SPEC_HASH_LABEL, ContainerSpec, spec_hash
from shipmate.spec.unitcontainer import UNIT_LABEL

log = logging.getLogger(__name__)
MACHINE_LABEL = "shipmate.machine"


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

    def to_json(self) -> dict[str, object]:
        """JSON-able form for the API."""
        return dataclasses.asdict(self)


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


class ContainerUnits:
    """Runs, adopts, replaces, reports and removes this machine's container units."""

    def __init__(self, engine: Engine, machine_id: str, *, stop_timeout: float = 10.0,
                 fetcher: ImageFetcher | None = None) -> None:
        self.engine = engine
        self.machine_id = machine_id
        self.stop_timeout = stop_timeout
        #: Fetches missing images from other machines (None: a missing image fails the
        #: create as the engine reports it).
        self.fetcher = fetcher
        self._status: dict[str, ContainerStatus] = {}
        self._pulling: dict[str, ContainerStatus] = {}  # units waiting for their image
        self._pulls: dict[str, asyncio.Task[None]] = {}  # one transfer per image
        self._notes: dict[str, list[str]] = {}  # pull progress, shown as the unit's log

    def names(self) -> set[str]:
        """Container units known here."""
        return set(self._status) | set(self._pulling)

    def status(self, name: str) -> ContainerStatus | None:
        """The unit's last known status."""
        return self._status.get(name) or self._pulling.get(name)

    def statuses(self) -> dict[str, ContainerStatus]:
        """Every container unit's last known status."""
        return {**self._pulling, **self._status}

    async def open(self) -> list[str]:
        """Find this machine's containers (after a daemon restart); returns the unit names."""
        await self.refresh()
        return sorted(self._status)

    async def refresh(self) -> None:
        """Re-read the state of this machine's containers from the engine."""
        found = await self.engine.list({MACHINE_LABEL: self.machine_id})
        seen: dict[str, ContainerStatus] = {}
        for info in found:
            unit = info.labels.get(UNIT_LABEL)
            if not unit:
                continue
            previous = self._status.get(unit)
            seen[unit] = self._describe(unit, info, previous)
        self._status = seen

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

    async def start(self, unit: str, spec: ContainerSpec) -> ContainerStatus:
        """Make ``unit`` run ``spec``: adopt a container with the same spec hash (starting
        it if it is stopped), replace one with another hash, create one if there is none.
        The agent calls this once per placement (or hash change), so an exited container
        stays exited between calls, as a ``Restart=no`` service would."""
        want = spec_hash(spec)
        current: ContainerInfo | None = None
        for info in await self._mine(unit):
            if info.labels.get(SPEC_HASH_LABEL) == want and current is None:
                current = info
            else:
                await self._remove(info.id)
        if current is None:
            await self._ensure_image(unit, spec, want)
            await self._remove_strays(unit, spec.name)
            cid = await self.engine.create(spec, extra_labels={MACHINE_LABEL: self.machine_id})
            await self.engine.start(cid)
        else:
            cid = current.id
            if not current.running and current.state != "restarting":
                await self.engine.start(cid)  # created (agent died in between) or stopped
        status = self._describe(unit, await self.engine.inspect(cid), self._status.get(unit))
        self._status[unit] = status
        return status

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

    async def _remove_strays(self, unit: str, container_name: str) -> None:
        """Another machine's copy of this unit, or a container squatting its name."""
        for info in await self.engine.list({UNIT_LABEL: unit}):
            log.warning("removing %s's container %s left by machine %s", unit, info.id[:12],
                        info.labels.get(MACHINE_LABEL, "?"))
            await self._remove(info.id)
        existing = await self.engine.inspect(container_name)
        if existing is not None and existing.labels.get(UNIT_LABEL) == unit:
            await self._remove(existing.id)

    async def _remove(self, cid: str) -> None:
        with contextlib.suppress(NotFoundError):
            await self.engine.stop(cid, timeout=self.stop_timeout)
        await self.engine.remove(cid, force=True)

    async def stop(self, unit: str) -> None:
        """Stop and remove the unit's container(s)."""
        for info in await self._mine(unit):
            await self._remove(info.id)
        self._status.pop(unit, None)
        self._notes.pop(unit, None)

    async def stop_all(self) -> None:
        """Stop every container unit of this machine."""
        for unit in list(self._status):
            try:
                await self.stop(unit)
            except EngineError as exc:
                log.warning("could not stop %s: %s", unit, exc)

    async def logs(self, unit: str, *, lines: int = 10,
                   follow: bool = False) -> AsyncIterator[str]:
        """The unit's container output."""
        status = self._status.get(unit)
        if (status is None or not status.container_id) and unit in self._notes:
            for line in self._notes[unit][-lines:]:  # no container yet: the image pull
                yield line
            return
        if status is None or not status.container_id:
            raise NotFoundError(f"no container for {unit} on this machine")
        async for line in self.engine.logs(status.container_id, follow=follow, tail=lines):
            yield line
