"""When a Let's Encrypt certificate is renewed, and how a failure is retried. Pure: records and
times in, decisions out.

The rules (docs/https.md says the same for users):

- A certificate is renewed from 30 days before it expires (:data:`shipmate.router.tls.
  RENEW_BEFORE`); an app with letsencrypt enabled but no certificate is due at once.
- A failed attempt is retried after a backoff that doubles from 10 minutes up to a day
  (:func:`backoff`), so a broken DNS record does not hit the CA's rate limits; the last
  error is kept and shown by ``letsencrypt:list``. A success clears both.
- Apps are renewed one at a time, in name order.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from shipmate.router.tls import RENEW_BEFORE, renewal_due

FIRST_RETRY = dt.timedelta(minutes=10)
MAX_RETRY = dt.timedelta(days=1)


@dataclasses.dataclass(frozen=True)
class AcmeApp:
    """``/shipmate/acme/apps/<app>``: letsencrypt is enabled for the app, and how it went."""

    failures: int = 0
    last_error: str = ""
    next_attempt: dt.datetime | None = None  # not before (after a failure)
    renewed: dt.datetime | None = None

    def to_json(self) -> str:
        """The stored form."""
        return json.dumps({
            "failures": self.failures, "last_error": self.last_error,
            "next_attempt": self.next_attempt.isoformat() if self.next_attempt else "",
            "renewed": self.renewed.isoformat() if self.renewed else ""}, sort_keys=True)

    @classmethod
    def from_json(cls, raw: bytes | str) -> AcmeApp:
        """Parse the stored form (unknown or bad fields fall back to defaults)."""
        data: Any = json.loads(raw)
        if not isinstance(data, dict):
            return cls()
        return cls(int(data.get("failures") or 0), str(data.get("last_error") or ""),
                   parse_time(data.get("next_attempt")), parse_time(data.get("renewed")))


def parse_time(value: object) -> dt.datetime | None:
    """An ISO 8601 time, or None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def backoff(failures: int) -> dt.timedelta:
    """How long to wait after the ``failures``-th failure in a row (10 min, 20, 40... 1 day)."""
    if failures <= 0:
        return dt.timedelta(0)
    return min(MAX_RETRY, FIRST_RETRY * (1 << min(failures - 1, 16)))


def failed(record: AcmeApp, error: str, now: dt.datetime) -> AcmeApp:
    """The record after a failed attempt."""
    failures = record.failures + 1
    return dataclasses.replace(record, failures=failures, last_error=error[:500],
                               next_attempt=now + backoff(failures))


def succeeded(record: AcmeApp, now: dt.datetime) -> AcmeApp:
    """The record after a certificate was issued."""
    return AcmeApp(renewed=now)


def next_renewal(record: AcmeApp, not_after: dt.datetime | None) -> dt.datetime | None:
    """When the app is next tried: 30 days before expiry, or after its backoff if later
    (None: now)."""
    due = not_after - RENEW_BEFORE if not_after else None
    if record.next_attempt and (due is None or record.next_attempt > due):
        return record.next_attempt
    return due


def due_apps(records: Mapping[str, AcmeApp], expiries: Mapping[str, dt.datetime | None],
             now: dt.datetime) -> list[str]:
    """The apps to renew now, in name order."""
    out = []
    for app in sorted(records):
        rec, not_after = records[app], expiries.get(app)
        if rec.next_attempt and now < rec.next_attempt:
            continue
        if not_after is None or renewal_due(not_after, now):
            out.append(app)
    return out
