"""Backups of services to a directory of the machine that runs them (pure rules).

``postgres:backup NAME DIR`` writes one dump (``pg_dump -Fc``, what ``postgres:export``
writes; for Redis an RDB snapshot) into ``DIR``, named after the service and the UTC time:
``postgres-db-20240501T030000Z.dump`` (``redis-cache-...Z.rdb``). ``KIND:backup-schedule
NAME "CRON" DIR --keep N`` makes the daemon of the machine running the service do the same on
a cron schedule (:mod:`shipmate.cronspec`, UTC), then delete the oldest of that service's
backups in ``DIR`` beyond the newest ``N``. Only files named like the service's backups are
ever deleted; a manual backup counts towards ``N`` when it is in the same directory.

A run missed while no daemon ran the service (the machine was down, the service stopped) is
made up once when it runs again, like systemd's ``Persistent=true`` timers and anacron: only
the latest missed run, and none from before the schedule was set.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Iterable

from shipmate import cronspec
from shipmate.errors import ValidationError
from shipmate.paas.storage_rules import PROTECTED
from shipmate.services.model import Service

DEFAULT_KEEP = 7
MAX_KEEP = 10000
_STAMP = "%Y%m%dT%H%M%SZ"
_PATH = re.compile(r"^/[A-Za-z0-9/._@+-]*$")


@dataclasses.dataclass(frozen=True)
class BackupSchedule:
    """A service's scheduled backups, as kept in the store."""

    cron: str
    directory: str
    keep: int
    set_at: float  # wall-clock seconds: no run before this is ever due

    def to_json(self) -> str:
        """Serialised for the store."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str | bytes) -> BackupSchedule:
        """Read back :meth:`to_json`."""
        return BackupSchedule(**json.loads(text))

    def describe(self) -> str:
        """``0 3 * * * to /srv/backups (keep 7)``: what ``KIND:info`` shows."""
        return f"{self.cron} to {self.directory} (keep {self.keep})"


@dataclasses.dataclass(frozen=True)
class LastBackup:
    """The outcome of the latest scheduled run."""

    slot: float  # the scheduled time it was made for (wall-clock seconds)
    finished: float
    file: str = ""
    error: str = ""

    def to_json(self) -> str:
        """Serialised for the store."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str | bytes) -> LastBackup:
        """Read back :meth:`to_json`."""
        return LastBackup(**json.loads(text))

    def describe(self) -> str:
        """``2024-05-01T03:00:04Z ok postgres-db-...dump`` or ``... failed: why``."""
        when = _utc(self.finished).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{when} failed: {self.error}" if self.error else f"{when} ok {self.file}"


def make_schedule(cron: str, directory: str, keep: int, now: float) -> BackupSchedule:
    """A checked schedule (the cron text parsed, the directory and count validated)."""
    cronspec.parse(cron)
    if not 1 <= keep <= MAX_KEEP:
        raise ValidationError(f"--keep {keep} is out of range",
                              hint=f"keep between 1 and {MAX_KEEP} backups")
    return BackupSchedule(cron.strip(), validate_directory(directory), keep, now)


def validate_directory(path: str) -> str:
    """A backup directory: absolute, plain (no ``..``, ``.`` or ``//``), not ``/`` and not
    a system directory."""
    if not _PATH.fullmatch(path) or "//" in path or any(
            part in (".", "..") for part in path.split("/")):
        raise ValidationError(f"Invalid backup directory {path!r}",
                              hint="give a plain absolute path on the server, such as "
                                   "/var/backups/shipmate")
    path = path.rstrip("/") or "/"
    for system in ("/", *PROTECTED):
        if path == system or (system != "/" and path.startswith(system + "/")):
            raise ValidationError(f"Refusing to write backups into {path}: it is a system "
                                  "directory", hint="use a directory of your own, such as "
                                                    "/var/backups/shipmate")
    return path


def file_name(service: Service, when: float) -> str:
    """The backup's file name for a run at ``when`` (wall-clock seconds, shown in UTC)."""
    ext = "rdb" if service.kind == "redis" else "dump"
    return f"{service.kind}-{service.name}-{_utc(when).strftime(_STAMP)}.{ext}"


def _pattern(service: Service) -> re.Pattern[str]:
    ext = "rdb" if service.kind == "redis" else "dump"
    return re.compile(re.escape(f"{service.kind}-{service.name}-") + r"\d{8}T\d{6}Z\."
                      + ext)


def beyond_retention(service: Service, names: Iterable[str], keep: int) -> list[str]:
    """The service's backups (among ``names``) to delete so the newest ``keep`` remain,
    oldest first. Other files are never named."""
    pattern = _pattern(service)
    ours = sorted(n for n in names if pattern.fullmatch(n))  # the stamp sorts by time
    return ours[:max(0, len(ours) - keep)]


def due_slot(schedule: BackupSchedule, last: LastBackup | None, now: float) -> float | None:
    """The scheduled time a backup is due for now, or None: the latest slot at or before
    ``now`` that was not run yet and is not older than the schedule."""
    slot = cronspec.parse(schedule.cron).last_at_or_before(_utc(now)).timestamp()
    if slot < schedule.set_at or (last is not None and slot <= last.slot):
        return None
    return slot


def next_run(schedule: BackupSchedule, now: float) -> str:
    """When the next run is, for ``KIND:info`` (UTC)."""
    when = cronspec.parse(schedule.cron).next_after(_utc(now))
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)
