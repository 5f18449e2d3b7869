"""The audit trail's data (pure): one :class:`AuditEvent` per change, how events are keyed in
the store, which key ranges hold the newest ones, and how ``shipmate events`` prints them.

Rules:

- Events live at ``/shipmate/events/<seq>``, ``seq`` zero-padded to 12 digits so the keys sort
  in the order the changes were recorded; ``/shipmate/events-seq`` holds the last ``seq``
  (outside the prefix, so a watch of the prefix sees events only). Recording writes the
  counter and the event in one compare-and-swap transaction and deletes the event that fell
  out of the window (:mod:`.eventlog`).
- An event says who (``actor``: an SSH key's name, a dashboard user, or a local user such as
  ``root``; ``via``: ``ssh``, ``local`` or ``dashboard``), what (``verb``: the Dokku / fleetctl
  command, ``app``, ``summary``), when (``time``, Unix seconds), and how it went (``outcome``:
  ``ok``, ``failed`` or ``cancelled``, with the error's message; ``refused``: the SSH server
  refused a key the command, before it ran, and the message says why). A summary never holds a
  config value, a key or a certificate: keys and names only.
- Text is cleaned of control characters and capped before it is stored, so a name somebody
  tried (and was refused) cannot reach a terminal as an escape sequence.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

PREFIX = "/shipmate/events/"
SEQ_KEY = "/shipmate/events-seq"
SEQ_DIGITS = 12
OUTCOMES = ("ok", "failed", "cancelled", "refused")
MAX_TEXT = 300  # characters of a summary or an error kept
COLUMNS = (("time", 20), ("actor", 16), ("verb", 22), ("app", 20), ("summary", 0))


def clean(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` on one line, printable, at most ``limit`` characters."""
    out = "".join(c if c.isprintable() else "?" for c in text.replace("\n", " "))
    return out if len(out) <= limit else out[:limit - 3] + "..."


@dataclasses.dataclass(frozen=True)
class AuditEvent:
    """One recorded change (``seq`` is 0 until it is recorded)."""

    time: float
    actor: str
    via: str
    verb: str
    app: str = ""
    summary: str = ""
    outcome: str = "ok"
    error: str = ""
    duration: float = 0.0
    seq: int = 0

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {self.outcome!r}")
        for name in ("actor", "via", "verb", "app", "summary", "error"):
            limit = MAX_TEXT if name in ("summary", "error") else 64
            object.__setattr__(self, name, clean(getattr(self, name), limit))

    def to_json(self) -> dict[str, Any]:
        """The stored (and ``--format json``) form."""
        data = dataclasses.asdict(self)
        data["duration"] = round(self.duration, 3)
        return data

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> AuditEvent:
        """Read a stored event back (unknown fields are ignored)."""
        names = {f.name for f in dataclasses.fields(AuditEvent)}
        return AuditEvent(**{k: v for k, v in data.items() if k in names})

    def encode(self) -> bytes:
        """The value stored at :func:`event_key`."""
        return json.dumps(self.to_json(), sort_keys=True).encode()

    @staticmethod
    def decode(value: bytes) -> AuditEvent | None:
        """A stored event, or None for a value that is not one (never raises)."""
        try:
            data = json.loads(value)
            return AuditEvent.from_json(data) if isinstance(data, dict) else None
        except (ValueError, TypeError):
            return None


def event_key(seq: int) -> str:
    """The store key of event number ``seq``."""
    return f"{PREFIX}{seq:0{SEQ_DIGITS}d}"


def seq_of(key: str) -> int | None:
    """The number of an event's key, or None for a key that is not an event's."""
    digits = key.removeprefix(PREFIX)
    if digits == key or len(digits) != SEQ_DIGITS or not digits.isdigit():
        return None
    return int(digits)


def block_size(n: int) -> int:
    """The span of the key blocks read to find the newest ``n`` events: a power of ten, at
    least 100 and at least ``n`` (so the newest ``n`` take at most two range reads)."""
    return int(10 ** max(2, math.ceil(math.log10(max(n, 1)))))


def blocks_back(newest: int, oldest: int, size: int) -> Iterator[str]:
    """Key prefixes that together hold events ``oldest..newest``, newest block first. Each
    prefix is a run of ``size`` (a power of ten) consecutive numbers."""
    if newest < max(oldest, 1):
        return
    digits = SEQ_DIGITS - round(math.log10(size))
    block = newest // size
    while block >= 0 and (block + 1) * size - 1 >= oldest:
        yield PREFIX + f"{block * size:0{SEQ_DIGITS}d}"[:digits]
        block -= 1


def matches(event: AuditEvent, app: str) -> bool:
    """True when ``event`` is about ``app`` (every event when ``app`` is empty)."""
    return not app or event.app == app


def iso(ts: float) -> str:
    """UTC time as the events list shows it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def summary_text(event: AuditEvent) -> str:
    """The summary column: the summary, and how a change that did not succeed ended."""
    if event.outcome == "ok":
        return event.summary or "-"
    why = f"{event.outcome}: {event.error}" if event.error else event.outcome
    return f"{event.summary} ({why})" if event.summary else f"({why})"


def render_row(event: AuditEvent) -> str:
    """One line of ``shipmate events``: fixed-width columns, so that lines printed one by one
    while following line up with the ones before."""
    cells = {"time": iso(event.time), "actor": event.actor or "-", "verb": event.verb,
             "app": event.app or "-", "summary": summary_text(event)}
    return _line([cells[name] for name, _ in COLUMNS])


def legend() -> str:
    """The header line of ``shipmate events``."""
    return _line([name.upper() for name, _ in COLUMNS])


def _line(cells: Sequence[str]) -> str:
    parts = [c.ljust(width) if width else c for c, (_, width) in zip(cells, COLUMNS, strict=True)]
    return " ".join(parts).rstrip()
