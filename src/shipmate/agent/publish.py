"""Unit status and journal tails, published to the store so ``fleet status`` and ``fleet
journal`` work from any machine (fleetctl ssh'd to the unit's machine; Shipmate machines
reach each other only through the store).

Each agent writes ``/shipmate/journal/<unit>/<machine>`` = ``{"detail": {...}, "lines":
[...]}`` under its heartbeat lease (so it vanishes with the machine), only when it changed
and at most every :data:`PUBLISH_INTERVAL` seconds. A reader on another machine shows the
last :data:`PUBLISHED_LINES` lines, and follows by polling (:func:`new_lines`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from shipmate.store.base import Store

JOURNAL_PREFIX = "/shipmate/journal/"
PUBLISHED_LINES = 50
MAX_LINE = 500  # characters kept of one published line
PUBLISH_INTERVAL = 2.0


def journal_key(unit: str, machine_id: str) -> str:
    """Where ``machine_id`` publishes ``unit``'s status and journal tail."""
    return f"{JOURNAL_PREFIX}{unit}/{machine_id}"


def new_lines(previous: Sequence[str], current: Sequence[str]) -> list[str]:
    """The lines of ``current`` not already shown from ``previous``: after the longest tail
    of ``previous`` that ``current`` starts with (pure; for following a published tail)."""
    for k in range(min(len(previous), len(current)), 0, -1):
        if list(previous[-k:]) == list(current[:k]):
            return list(current[k:])
    return list(current)


class Publisher:
    """Writes this machine's unit details and journal tails to the store."""

    def __init__(self, store: Store, machine_id: str, *,
                 interval: float = PUBLISH_INTERVAL) -> None:
        self.store = store
        self.machine_id = machine_id
        self.interval = interval
        self._last: dict[str, bytes] = {}
        self._at = 0.0

    def reset(self) -> None:
        """Forget what was published (after a new lease: everything goes again)."""
        self._last.clear()
        self._at = 0.0

    async def publish(self, units: Mapping[str, Any],
                      detail: Callable[[str], dict[str, Any] | None],
                      lines: Callable[[str], Awaitable[list[str]]], lease: int) -> None:
        """Publish each unit's detail and tail if it changed (rate-limited)."""
        if time.monotonic() - self._at < self.interval:
            return
        self._at = time.monotonic()
        for name in units:
            body = {"detail": detail(name), "lines": [
                line[:MAX_LINE] for line in (await lines(name))[-PUBLISHED_LINES:]]}
            data = json.dumps(body, sort_keys=True, default=str).encode()
            if self._last.get(name) != data:
                await self.store.put(journal_key(name, self.machine_id), data, lease=lease)
                self._last[name] = data

    async def clear(self, unit: str) -> None:
        """The unit left this machine."""
        self._last.pop(unit, None)
        await self.store.delete(journal_key(unit, self.machine_id))


async def read_published(store: Store, unit: str) -> dict[str, dict[str, Any]]:
    """Every machine's published record of ``unit``, by machine ID."""
    kvs, _ = await store.range(f"{JOURNAL_PREFIX}{unit}/")
    out = {}
    for kv in kvs:
        try:
            out[kv.key.rsplit("/", 1)[1]] = json.loads(kv.value)
        except ValueError:
            continue
    return out
