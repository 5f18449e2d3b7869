"""Scheduled backups: the daemon component that makes one whenever the ``backup_schedule``
cron schedule (UTC, :mod:`shipmate.cronspec`) comes due, on the scheduler leader only (one
archive per cluster, not one per machine), into ``backup_dir``, keeping the newest
``backup_keep`` scheduled archives and removing older ones.

Only files named as this module names them (``shipmate-backup-YYYYMMDDTHHMMSSZ.tar.gz``) are
ever removed; archives made by hand with ``backup create`` elsewhere are never touched. A
failed backup is logged and counted, and the next one comes at its time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from shipmate import cronspec
from shipmate.backup.create import BackupMaker
from shipmate.clock import Clock, SystemClock
from shipmate.config import Config
from shipmate.errors import ShipmateError

log = logging.getLogger(__name__)
_NAME = re.compile(r"^shipmate-backup-\d{8}T\d{6}Z\.tar\.gz$")
#: The longest single sleep: the wall clock is looked at again after it (it may jump).
MAX_SLEEP = 60.0


def archive_name(when: dt.datetime) -> str:
    """The file name of the scheduled backup made at ``when`` (UTC)."""
    return f"shipmate-backup-{when.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}.tar.gz"


def expired(names: Iterable[str], keep: int) -> list[str]:
    """The scheduled archives to remove so that the newest ``keep`` stay (oldest first);
    other names are never listed."""
    ours = sorted(n for n in names if _NAME.fullmatch(n))
    return ours[:max(0, len(ours) - max(1, keep))]


def backup_dir(config: Config) -> Path:
    """Where scheduled backups go (``backup_dir``, else ``STATE_DIR/backups``)."""
    return Path(config.backup_dir) if config.backup_dir else Path(config.state_dir) / "backups"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ScheduledBackups:
    """The daemon component (runs only when ``backup_schedule`` is set)."""

    def __init__(self, maker: BackupMaker, config: Config, is_leader: Callable[[], bool], *,
                 clock: Clock | None = None,
                 wall: Callable[[], dt.datetime] = _utcnow) -> None:
        self.maker, self.config, self.is_leader = maker, config, is_leader
        self.schedule = cronspec.parse(str(config.backup_schedule))
        self.clock: Clock = clock or SystemClock()
        self.wall = wall
        #: Archives this daemon made and failed to make (``shipmate status`` may show them).
        self.made: list[Path] = []
        self.failures = 0

    async def run(self) -> None:
        """Until cancelled: wait for each due time, then back up if this machine leads."""
        while True:
            due = self.schedule.next_after(self.wall())
            while (left := (due - self.wall()).total_seconds()) > 0:
                await self.clock.sleep(min(left, MAX_SLEEP))
            if self.is_leader():
                await self.once(due)

    async def once(self, when: dt.datetime) -> Path | None:
        """Make the backup due at ``when`` and prune old ones; None when it failed."""
        folder = backup_dir(self.config)
        dest = folder / archive_name(when)
        try:
            await asyncio.to_thread(folder.mkdir, mode=0o700, parents=True, exist_ok=True)
            await self.maker.create(dest, lambda line: log.info("backup: %s", line.strip()))
        except (ShipmateError, OSError) as exc:
            self.failures += 1
            log.warning("scheduled backup to %s failed: %s", dest, exc)
            return None
        self.made.append(dest)
        names = await asyncio.to_thread(lambda: [p.name for p in folder.iterdir()])
        for name in expired(names, int(self.config.backup_keep)):
            log.info("backup: removing %s (backup_keep=%s)", name, self.config.backup_keep)
            await asyncio.to_thread((folder / name).unlink, True)
        return dest
