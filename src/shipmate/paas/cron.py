"""Scheduled tasks: app.json ``cron`` entries, their ids, records and when each is due (pure).

- An entry is ``{"command": ..., "schedule": ...}`` (Dokku's fields; ``maintenance: true``
  keeps it from running; ``concurrency_policy`` is read but every policy runs as ``allow``).
  Schedules are :mod:`shipmate.cronspec`'s (five fields or ``@daily``..., UTC).
- An entry's id is Dokku-style stable: a short hash of its schedule and command, so the same
  entry keeps its id (and its suspended flag and run history) across deploys.
- :func:`decide` says which slot the scheduler leader fires now, given the last slot recorded
  for the entry: the latest slot that is due and not yet recorded, unless it is more than
  ``grace`` seconds late (then it is recorded as skipped, and logged, as cron does). Older
  missed slots are never run.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from shipmate import cronspec
from shipmate.errors import ValidationError

#: Runs kept per entry in its history (``cron:list --format json`` shows them).
HISTORY = 10
#: Output lines kept of each run, and characters per line.
OUTPUT_LINES, OUTPUT_WIDTH = 5, 200
_ID = re.compile(r"^[a-z0-9]{1,32}$")
_POLICIES = ("allow", "forbid", "replace")
_HINT = 'each entry is {"command": "...", "schedule": "*/5 * * * *"} (UTC)'


@dataclasses.dataclass(frozen=True)
class CronEntry:
    """One app.json ``cron`` entry, as the release records it."""

    schedule: str
    command: str
    maintenance: bool = False

    @property
    def id(self) -> str:
        """Stable id: 10 base-32 characters of a hash of schedule and command."""
        return entry_id(self.schedule, self.command)

    def parsed(self) -> cronspec.Schedule:
        """The schedule (already validated when the entry was read)."""
        return cronspec.parse(self.schedule)

    def to_json(self) -> dict[str, Any]:
        """Stored in the release."""
        out: dict[str, Any] = {"schedule": self.schedule, "command": self.command}
        if self.maintenance:
            out["maintenance"] = True
        return out

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> CronEntry:
        """Read back :meth:`to_json`."""
        return CronEntry(str(data["schedule"]), str(data["command"]),
                         bool(data.get("maintenance", False)))


def entry_id(schedule: str, command: str) -> str:
    """Dokku identifies a cron task by its schedule and command; so does Shipmate, shortly."""
    digest = hashlib.sha256(f"{schedule}==={command}".encode()).digest()
    return _b32(digest)[:10]


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode().lower().rstrip("=")


def validate_id(text: str) -> str:
    """A cron id as ``cron:list`` shows it (checked before it reaches a store key)."""
    if not _ID.fullmatch(text):
        raise ValidationError(f"Invalid cron id {text!r}",
                              hint="use an ID column value of `cron:list APP`")
    return text


def parse_entries(raw: Any, text: str = "", *, now: dt.datetime | None = None
                  ) -> tuple[tuple[CronEntry, ...], tuple[str, ...]]:
    """app.json's ``cron`` list as entries, and the entry fields read but not used
    (``cron.concurrency_policy`` when an entry asks for other than ``allow``).

    A bad entry raises ValidationError naming the app.json line (found in ``text``, the file
    as written) and the entry; a schedule that never runs is bad too."""
    if raw is None:
        return (), ()
    if not isinstance(raw, list):
        raise ValidationError("app.json cron must be a list of entries", hint=_HINT)
    entries: list[CronEntry] = []
    ignored: set[str] = set()
    for i, item in enumerate(raw):
        try:
            entry = _entry(item, now or dt.datetime.now(dt.UTC))
            if entry.id in {e.id for e in entries}:
                raise ValidationError("repeats an earlier entry (same schedule and command)")
        except ValidationError as exc:
            raise _bad(raw, i, text, exc.message, exc.hint or _HINT) from exc
        if item.get("concurrency_policy", "allow") != "allow":
            ignored.add("cron.concurrency_policy")
        entries.append(entry)
    return tuple(entries), tuple(sorted(ignored))


def _entry(item: Any, now: dt.datetime) -> CronEntry:
    if not isinstance(item, dict):
        raise ValidationError("is not an object")
    command, schedule = item.get("command"), item.get("schedule")
    if not isinstance(command, str) or not command.strip():
        raise ValidationError("needs a command (a non-empty string)")
    if not isinstance(schedule, str):
        raise ValidationError("needs a schedule (a string)")
    if item.get("concurrency_policy", "allow") not in _POLICIES:
        raise ValidationError(f"concurrency_policy must be one of {', '.join(_POLICIES)}")
    maintenance = item.get("maintenance", False)
    if not isinstance(maintenance, bool):
        raise ValidationError("maintenance must be true or false")
    parsed = cronspec.parse(schedule)
    parsed.next_after(now)  # "0 0 30 2 *" parses but never runs
    return CronEntry(parsed.text, command.strip(), maintenance)


def _bad(raw: list[Any], i: int, text: str, why: str, hint: str) -> ValidationError:
    line = _line_of(raw, i, text)
    where = f"app.json line {line}, cron entry {i + 1}" if line else f"app.json cron entry {i + 1}"
    shown = json.dumps(raw[i])
    shown = shown if len(shown) <= 120 else shown[:117] + "..."
    return ValidationError(f"{where}: {why}\n       {shown}", hint=hint)


def _line_of(raw: list[Any], index: int, text: str) -> int:
    """The line of app.json where entry ``index`` is written (best effort: 0 when unsure):
    where its schedule (else command) string appears after the ``"cron"`` key, counting the
    earlier entries that hold the same string."""
    item = raw[index]
    start = text.find('"cron"')
    if start < 0 or not isinstance(item, dict):
        return 0
    for field in ("schedule", "command"):
        value = item.get(field)
        if not isinstance(value, str):
            continue
        same = sum(1 for e in raw[:index] if isinstance(e, dict)
                   and value in (e.get("schedule"), e.get("command")))
        needle, pos, hit = json.dumps(value), start, -1
        for _ in range(same + 1):
            hit = text.find(needle, pos)
            if hit < 0:
                break
            pos = hit + 1
        if hit >= 0:
            return text.count("\n", 0, hit) + 1
    return 0


def entries_of(release_cron: Sequence[Mapping[str, Any]]) -> tuple[CronEntry, ...]:
    """The entries a release recorded."""
    return tuple(CronEntry.from_json(e) for e in release_cron)


# --- records ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class EntryState:
    """What the store holds per entry: the last slot fired (or skipped), the suspended flag
    and since when slots count (a resume moves it, so slots missed while suspended are not
    run late)."""

    slot: str = ""  # ISO minute, "" before the first
    suspended: bool = False
    since: float = 0.0
    by: str = ""  # the machine that recorded the slot

    def to_json(self) -> str:
        """Stored under the entry's key."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str | bytes) -> EntryState:
        """Read back :meth:`to_json` (unknown fields ignored)."""
        data = json.loads(text)
        return EntryState(str(data.get("slot", "")), bool(data.get("suspended", False)),
                          float(data.get("since", 0.0)), str(data.get("by", "")))


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """One run: what fired it, where, when, how long, how it ended."""

    run: str  # unique per run
    trigger: str  # "schedule" or "manual"
    slot: str  # the scheduled minute (ISO), "" for a manual run
    machine: str
    started: float
    duration: float | None = None  # None while running
    exit_code: int | None = None
    error: str = ""  # why it could not run (no image...)
    output: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """One element of the history list."""
        return {**dataclasses.asdict(self), "output": list(self.output)}

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> RunRecord:
        """Read back :meth:`to_json`."""
        return RunRecord(**{**data, "output": tuple(data.get("output", ()))})

    def summary(self) -> str:
        """``exit 0 in 1.2s``, ``running``, or the error."""
        if self.error:
            return f"failed: {self.error}"
        if self.exit_code is None:
            return f"running on {self.machine}"
        return f"exit {self.exit_code} in {self.duration or 0:.1f}s"


def tail(output: str) -> tuple[str, ...]:
    """The last lines of a run's output, as kept in its record."""
    lines = [line[:OUTPUT_WIDTH] for line in output.splitlines()]
    return tuple(lines[-OUTPUT_LINES:])


def history_to_json(history: Sequence[RunRecord]) -> str:
    """An entry's history as stored."""
    return json.dumps([r.to_json() for r in history], sort_keys=True)


def history_from_json(text: str | bytes) -> list[RunRecord]:
    """Read back :func:`history_to_json`."""
    data = json.loads(text)
    return [RunRecord.from_json(r) for r in data] if isinstance(data, list) else []


def resolve_command(command: str, processes: Mapping[str, str]) -> str:
    """What runs: as in Dokku, a command that is a Procfile process type's name runs that
    type's command."""
    return processes.get(command) or command


def with_run(history: Sequence[RunRecord], record: RunRecord) -> list[RunRecord]:
    """``history`` with ``record`` added, or replacing the record of the same run; the last
    :data:`HISTORY` kept, oldest first."""
    out = [r for r in history if r.run != record.run] + [record]
    out.sort(key=lambda r: r.started)
    return out[-HISTORY:]


# --- when to fire ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Decision:
    """What the leader does for an entry now: record ``slot``; run it when ``fire``.
    ``missed`` counts the older slots passed over (logged)."""

    slot: dt.datetime
    fire: bool
    missed: int = 0


def iso(when: dt.datetime) -> str:
    """``2024-05-01T12:05:00Z``."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_iso(text: str) -> dt.datetime:
    """Read back :func:`iso`."""
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def decide(schedule: cronspec.Schedule, state: EntryState, since: float, now: dt.datetime,
           grace: float) -> Decision | None:
    """The slot to record now, or None when nothing is due.

    ``since`` is when the entry came to be (its release's creation): slots at or before it
    never run, as a crontab line added at 12:03:30 does not run at 12:03. Once a slot is
    recorded the entry is known, and a newer release (``config:set`` at 12:03:02) no longer
    holds back a slot that is late (12:03 after a leader change). The latest due slot after
    the recorded one (and after a resume) is fired when it is at most ``grace`` seconds
    late; later than that it is recorded unrun."""
    try:
        due = schedule.last_at_or_before(now)
    except ValidationError:
        return None
    floor = state.since if state.slot else max(since, state.since)
    if due.timestamp() <= floor:
        return None
    last = from_iso(state.slot) if state.slot else None
    if last is not None and due <= last:
        return None
    start = dt.datetime.fromtimestamp(floor, dt.UTC)
    if last is not None and last > start:
        start = last
    missed = _count_between(schedule, start, due)
    late = (now - due).total_seconds()
    return Decision(due, fire=late <= grace, missed=missed)


def _count_between(schedule: cronspec.Schedule, start: dt.datetime, end: dt.datetime,
                   limit: int = 1000) -> int:
    """Slots strictly between ``start`` and ``end`` (at most ``limit`` counted)."""
    count, when = 0, start
    while count < limit:
        when = schedule.next_after(when)
        if when >= end:
            return count
        count += 1
    return count


def next_run(schedule: cronspec.Schedule, now: dt.datetime) -> dt.datetime | None:
    """The next slot after ``now``."""
    try:
        return schedule.next_after(now)
    except ValidationError:
        return None
