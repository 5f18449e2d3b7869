"""When certificates are renewed and how failures back off (pure)."""

from __future__ import annotations

import datetime as dt

from shipmate.paas import renewal
from shipmate.paas.renewal import AcmeApp

NOW = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def test_backoff_doubles_from_ten_minutes_to_a_day() -> None:
    minutes = [renewal.backoff(n) / dt.timedelta(minutes=1) for n in range(0, 11)]
    assert minutes == [0, 10, 20, 40, 80, 160, 320, 640, 1280, 1440, 1440]


def test_due_thirty_days_before_expiry_or_at_once_without_a_certificate() -> None:
    records = {"a": AcmeApp(), "b": AcmeApp(), "c": AcmeApp(), "d": AcmeApp()}
    expiries = {"a": NOW + 31 * DAY, "b": NOW + 30 * DAY, "c": None, "d": NOW - DAY}
    assert renewal.due_apps(records, expiries, NOW) == ["b", "c", "d"]


def test_a_failure_waits_its_backoff_and_a_success_clears_it() -> None:
    rec = renewal.failed(AcmeApp(), "dns says no", NOW)
    assert (rec.failures, rec.last_error, rec.next_attempt) == (1, "dns says no",
                                                                NOW + dt.timedelta(minutes=10))
    assert renewal.due_apps({"a": rec}, {"a": None}, NOW) == []
    assert renewal.due_apps({"a": rec}, {"a": None}, NOW + dt.timedelta(minutes=10)) == ["a"]
    assert renewal.failed(rec, "again", NOW).next_attempt == NOW + dt.timedelta(minutes=20)
    assert renewal.succeeded(rec, NOW) == AcmeApp(renewed=NOW)
    assert AcmeApp.from_json(rec.to_json()) == rec


def test_next_renewal_is_the_later_of_due_and_backoff() -> None:
    assert renewal.next_renewal(AcmeApp(), NOW + 90 * DAY) == NOW + 60 * DAY
    late = AcmeApp(failures=3, next_attempt=NOW + DAY)
    assert renewal.next_renewal(late, NOW + 10 * DAY) == NOW + DAY
    assert renewal.next_renewal(AcmeApp(), None) is None
