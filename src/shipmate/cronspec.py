"""Cron schedules, as crontab(5) writes them (pure, UTC).

One parser for every schedule Shipmate reads: app.json ``cron`` entries, scheduled service
backups and platform backups. It reads the five fields (minute, hour, day of month, month, day
of week) with ``*``, ``a-b``, ``a,b``, ``*/n`` and ``a-b/n``, month and day names (``jan``,
``mon``), ``7`` for Sunday, and the nicknames ``@yearly``/``@annually``, ``@monthly``,
``@weekly``, ``@daily``/``@midnight`` and ``@hourly``. As in Vixie cron, when both the day of
month and the day of week are restricted a day matching either runs. ``@reboot`` and seconds
fields are refused: a schedule here names minutes of wall-clock time, always in UTC.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from shipmate.errors import ValidationError

NICKNAMES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
#: (name, lowest, highest, names) of the five fields, in crontab order.
_FIELDS = (("minute", 0, 59, ()), ("hour", 0, 23, ()), ("day of month", 1, 31, ()),
           ("month", 1, 12, _MONTHS), ("day of week", 0, 7, _DAYS))
#: How far ahead (or back) a search looks: long enough for 29 February in a leap year.
_SEARCH_DAYS = 366 * 8 + 2
HINT = 'write five fields "MIN HOUR DAY MONTH WEEKDAY" such as "*/5 * * * *", or @daily'


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A parsed schedule: the set of values each field allows."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday ... 6 = Saturday
    days_restricted: bool
    weekdays_restricted: bool

    def runs_on(self, day: dt.date) -> bool:
        """Whether the schedule has any run on this date."""
        if day.month not in self.months:
            return False
        by_day = day.day in self.days
        by_weekday = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return by_day or by_weekday
        return by_day and by_weekday

    def matches(self, when: dt.datetime) -> bool:
        """Whether a run falls on this minute (seconds are ignored)."""
        when = _utc(when)
        return (when.minute in self.minutes and when.hour in self.hours
                and self.runs_on(when.date()))

    def next_after(self, when: dt.datetime) -> dt.datetime:
        """The first run strictly after ``when`` (UTC, whole minutes)."""
        start = _utc(when).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        day = start.date()
        for _ in range(_SEARCH_DAYS):
            if self.runs_on(day):
                floor = (start.hour, start.minute) if day == start.date() else (0, 0)
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        if (hour, minute) >= floor:
                            return _at(day, hour, minute)
            day += dt.timedelta(days=1)
        raise ValidationError(f"Cron schedule {self.text!r} never runs", hint=HINT)

    def last_at_or_before(self, when: dt.datetime) -> dt.datetime:
        """The latest run at or before ``when`` (UTC, whole minutes): the slot now due."""
        end = _utc(when).replace(second=0, microsecond=0)
        day = end.date()
        for _ in range(_SEARCH_DAYS):
            if self.runs_on(day):
                ceiling = (end.hour, end.minute) if day == end.date() else (23, 59)
                for hour in sorted(self.hours, reverse=True):
                    for minute in sorted(self.minutes, reverse=True):
                        if (hour, minute) <= ceiling:
                            return _at(day, hour, minute)
            day -= dt.timedelta(days=1)
        raise ValidationError(f"Cron schedule {self.text!r} never runs", hint=HINT)


def parse(text: str) -> Schedule:
    """Parse a schedule; a clear ValidationError names the part that is wrong."""
    spec = " ".join(text.split())
    if spec.lower() == "@reboot":
        raise ValidationError("Cron schedule @reboot is not supported",
                              hint="a process that runs at start belongs in the Procfile")
    expanded = NICKNAMES.get(spec.lower(), spec)
    if expanded.startswith("@"):
        raise ValidationError(f"Unknown cron nickname {spec!r}",
                              hint="use @yearly, @monthly, @weekly, @daily or @hourly")
    parts = expanded.split(" ")
    if len(parts) != 5:
        raise ValidationError(f"Cron schedule {text!r} has {len(parts)} fields, not 5",
                              hint=HINT)
    values = [_field(part, *field, text) for part, field in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in values[4])
    return Schedule(text=spec, minutes=values[0], hours=values[1], days=values[2],
                    months=values[3], weekdays=weekdays,
                    # as Vixie cron: a field that starts with `*` (`*/2` too) is unrestricted
                    days_restricted=not parts[2].startswith("*"),
                    weekdays_restricted=not parts[4].startswith("*"))


def _field(part: str, name: str, low: int, high: int, names: tuple[str, ...],
           text: str) -> frozenset[int]:
    out: set[int] = set()
    for item in part.split(","):
        out.update(_item(item, name, low, high, names, text))
    return frozenset(out)


def _item(item: str, name: str, low: int, high: int, names: tuple[str, ...],
          text: str) -> range:
    def bad(why: str) -> ValidationError:
        return ValidationError(f"Cron schedule {text!r}: {name} {item!r} {why}", hint=HINT)

    body, _, step_text = item.partition("/")
    step = 1
    if step_text:
        if not step_text.isdigit() or int(step_text) == 0:
            raise bad("has a step that is not a positive number")
        step = int(step_text)
    if body == "*":
        first, last = low, high
    elif "-" in body:
        a, _, b = body.partition("-")
        first, last = _number(a, names, bad), _number(b, names, bad)
    else:
        first = _number(body, names, bad)
        last = high if step_text else first
    if not low <= first <= high or not low <= last <= high:
        raise bad(f"is outside {low}-{high}")
    if first > last:
        raise bad("is a range that runs backwards")
    return range(first, last + 1, step)


def _number(word: str, names: tuple[str, ...], bad: Callable[[str], ValidationError]) -> int:
    if word.isdigit():
        return int(word)
    if word.lower() in names:
        offset = 1 if len(names) == 12 else 0  # months count from 1, weekdays from 0
        return names.index(word.lower()) + offset
    raise bad("is not a number" + (" or a name" if names else ""))


def _utc(when: dt.datetime) -> dt.datetime:
    if when.tzinfo is None:
        return when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


def _at(day: dt.date, hour: int, minute: int) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=dt.UTC)
