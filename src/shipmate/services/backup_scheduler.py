"""Scheduled backups (``KIND:backup-schedule``): every daemon runs this loop, and each makes
the due backups of the services whose unit runs, active, on its own machine (where the
backup directory is). What is due is decided by :func:`.backups.due_slot`; the outcome of
each run is kept in the store, where ``KIND:info`` shows it, so a service that moves to
another machine is not backed up twice for one slot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from shipmate.clock import Clock
from shipmate.errors import ShipmateError
from shipmate.scheduler.registry import Registry
from shipmate.services.backup_io import prune
from shipmate.services.backups import LastBackup, due_slot
from shipmate.services.model import KINDS, Service
from shipmate.services.state import ServiceState
from shipmate.store.base import Store

log = logging.getLogger(__name__)
#: Makes one backup: (service, directory, wall-clock now) -> the backup's path.
Backup = Callable[[Service, str, float], Awaitable[str]]
INTERVAL = 20.0  # seconds between looks: a run starts within this of its minute


class BackupScheduler:
    """The loop that fires the scheduled backups of this machine's services."""

    def __init__(self, store: Store, machine_id: str, backup: Backup, *, clock: Clock,
                 wall: Callable[[], float] = time.time, interval: float = INTERVAL) -> None:
        self.state, self.registry = ServiceState(store), Registry(store)
        self.machine_id, self.backup = machine_id, backup
        self.clock, self.wall, self.interval = clock, wall, interval

    async def run(self) -> None:
        """Look for due backups every ``interval`` seconds, forever."""
        while True:
            try:
                await self.tick()
            except ShipmateError as exc:  # the store was away: look again next time
                log.warning("scheduled backups: %s", exc)
            await self.clock.sleep(self.interval)

    async def tick(self) -> list[LastBackup]:
        """Make the backups due now on this machine, one after another; their outcomes."""
        here = {s.unit for s in await self.registry.unit_states()
                if s.machine == self.machine_id and s.active_state == "active"}
        done = []
        for kind in sorted(KINDS):
            for service in await self.state.list(kind):
                if service.unit in here and not service.destroying:
                    outcome = await self._maybe_run(service)
                    if outcome is not None:
                        done.append(outcome)
        return done

    async def _maybe_run(self, service: Service) -> LastBackup | None:
        schedule = await self.state.backup_schedule(service)
        if schedule is None:
            return None
        now = self.wall()
        slot = due_slot(schedule, await self.state.last_backup(service), now)
        if slot is None:
            return None
        try:
            path = await self.backup(service, schedule.directory, now)
            gone = await prune(schedule.directory, service, schedule.keep)
            log.info("backed up %s to %s (removed %d old)", service.ref, path, len(gone))
            outcome = LastBackup(slot, self.wall(), file=path)
        except (ShipmateError, OSError) as exc:
            log.warning("scheduled backup of %s failed: %s", service.ref, exc)
            outcome = LastBackup(slot, self.wall(), error=str(exc).splitlines()[0][:300])
        await self.state.set_last_backup(service, outcome)
        return outcome
