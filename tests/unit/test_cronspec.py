"""Cron schedules: parsing, refusals, next and last runs (crontab(5) semantics, UTC)."""

from __future__ import annotations

import datetime as dt

import pytest

from shipmate import cronspec
from shipmate.errors import ValidationError

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("spec", "now", "expected"), [
    ("* * * * *", "2026-12-04 18:13:42", "2026-12-04 18:14"),
    ("*/5 * * * *", "2026-12-04 18:13", "2026-12-04 18:15"),
    ("*/5 * * * *", "2026-12-04 18:55", "2026-12-04 19:00"),
    ("@daily", "2026-12-04 18:13", "2026-12-05 00:00"),
    ("@hourly", "2026-12-31 23:30", "2027-01-01 00:00"),
    ("@weekly", "2026-12-04 18:13", "2026-12-06 00:00"),  # a Friday; Sunday next
    ("@monthly", "2026-12-04 18:13", "2027-01-01 00:00"),
    ("30 2 * * mon-fri", "2026-12-04 18:13", "2026-12-07 02:30"),  # skips the weekend
    ("0 0 29 feb *", "2026-12-04 00:00", "2028-02-29 00:00"),
    ("0 12 1 * 7", "2026-12-04 00:00", "2026-12-06 12:00"),  # 1st or a Sunday (Vixie rule)
    ("0 12 */2 * 1", "2026-12-04 00:00", "2026-12-07 12:00"),  # `*/2`: odd days AND Monday
    ("15,45 9-17/4 * jan,dec *", "2026-12-04 13:20", "2026-12-04 13:45"),
])
def test_next_after(spec: str, now: str, expected: str) -> None:
    assert cronspec.parse(spec).next_after(at(now)) == at(expected)


@pytest.mark.parametrize(("spec", "now", "expected"), [
    ("* * * * *", "2026-12-04 18:13:42", "2026-12-04 18:13"),
    ("*/5 * * * *", "2026-12-04 18:13", "2026-12-04 18:10"),
    ("@daily", "2026-12-04 00:00", "2026-12-04 00:00"),
    ("@monthly", "2026-12-04 18:13", "2026-12-01 00:00"),
    ("30 2 * * mon-fri", "2026-12-06 10:00", "2026-12-04 02:30"),
])
def test_last_at_or_before(spec: str, now: str, expected: str) -> None:
    assert cronspec.parse(spec).last_at_or_before(at(now)) == at(expected)


def test_next_run_follows_the_last_one() -> None:
    schedule = cronspec.parse("7 */3 * * *")
    when = at("2026-12-04 00:00")
    runs = []
    for _ in range(10):
        when = schedule.next_after(when)
        runs.append(when)
        assert schedule.matches(when)
        assert schedule.last_at_or_before(when) == when
    assert [r.hour for r in runs[:8]] == [0, 3, 6, 9, 12, 15, 18, 21]


def test_naive_and_other_zones_are_read_as_the_same_instant() -> None:
    schedule = cronspec.parse("0 * * * *")
    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert schedule.next_after(dt.datetime(2026, 12, 4, 20, 30, tzinfo=plus_two)) == \
        at("2026-12-04 19:00")
    assert schedule.next_after(dt.datetime(2026, 12, 4, 18, 30)) == at("2026-12-04 19:00")


@pytest.mark.parametrize(("spec", "words"), [
    ("* * * *", "4 fields, not 5"),
    ("* * * * * *", "6 fields, not 5"),
    ("60 * * * *", "minute '60' is outside 0-59"),
    ("* 24 * * *", "hour '24' is outside 0-23"),
    ("* * 0 * *", "day of month '0' is outside 1-31"),
    ("* * * 13 *", "month '13' is outside 1-12"),
    ("* * * * 8", "day of week '8' is outside 0-7"),
    ("*/0 * * * *", "step that is not a positive number"),
    ("5-1 * * * *", "runs backwards"),
    ("x * * * *", "minute 'x' is not a number"),
    ("* * * foo *", "month 'foo' is not a number or a name"),
    ("@sometimes", "Unknown cron nickname"),
    ("@reboot", "@reboot is not supported"),
    ("0 0 31 feb *", "never runs"),
])
def test_bad_schedules_say_what_is_wrong(spec: str, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        cronspec.parse(spec).next_after(at("2026-12-04 00:00"))
    assert words in str(caught.value)
