"""The newest audit events, overall and per app, kept in memory for the pages.

The trail is stored in sequence order only (:mod:`shipmate.web.events`), so the newest
events of one app may lie thousands of events back: reading them for every page (and every
second of a live page) would cost more than the rest of the page. :class:`RecentEvents`
reads the kept window once, then follows the trail through its watch (the same follow
``shipmate events -f`` uses, which re-reads what a broken watch missed), keeping the newest
:data:`KEEP` events overall and per app. Until it has read the window (a daemon that just
started), pages read the store directly (:meth:`RecentEvents.read`).
"""

from __future__ import annotations

import asyncio
import collections

from shipmate.web.eventlog import EventLog
from shipmate.web.events import AuditEvent

KEEP = 50
FALLBACK_SCAN = 100  # events read back while the index is not ready


class RecentEvents:
    """The newest events of the trail, overall and per app (oldest first)."""

    def __init__(self, events: EventLog, keep: int = KEEP) -> None:
        self.events, self.keep = events, keep
        self.ready = asyncio.Event()
        self._all: collections.deque[AuditEvent] = collections.deque(maxlen=keep)
        self._apps: dict[str, collections.deque[AuditEvent]] = {}
        self._last = 0

    def add(self, event: AuditEvent) -> None:
        """Keep ``event`` (events already seen are ignored)."""
        if event.seq <= self._last:
            return
        self._last = event.seq
        self._all.append(event)
        if event.app:
            self._apps.setdefault(event.app, collections.deque(maxlen=self.keep)).append(event)

    async def run(self) -> None:
        """Read the window, then follow the trail until cancelled."""
        newest, revision = await self.events.newest()
        for event in await self.events.since(max(0, newest - self.events.limit)):
            self.add(event)
        self.ready.set()
        async for new in self.events.follow(newest, revision):
            if new is not None:  # None: a heartbeat
                self.add(new)

    async def read(self, n: int, app: str = "") -> list[AuditEvent]:
        """The newest ``n`` (at most :data:`KEEP`) events, of ``app`` if given, oldest
        first; from memory once ready, else from the newest events in the store."""
        if self.ready.is_set():
            kept = self._apps.get(app, ()) if app else self._all
            return list(kept)[-n:] if n else []
        found, _, _ = await self.events.recent(FALLBACK_SCAN)
        return [e for e in found if not app or e.app == app][-n:] if n else []
