"""Keeps the store's history bounded: every ``interval`` seconds, drop history older than the
newest ``keep`` revisions (etcd's ``--auto-compaction-mode=revision``). Watchers further
behind than that get CompactedError and re-read, which every consumer already handles."""

from __future__ import annotations

import asyncio
import logging

from shipmate.errors import ShipmateError
from shipmate.store.base import Store

log = logging.getLogger(__name__)


class Compactor:
    """Periodic compaction of one store."""

    def __init__(self, store: Store, *, keep: int = 10_000, interval: float = 300.0) -> None:
        self.store, self.keep, self.interval = store, keep, interval
        self.compacted = 0

    async def once(self) -> int:
        """Compact if the history is longer than ``keep``; returns the compact revision."""
        target = await self.store.revision() - self.keep
        if target > self.compacted:
            await self.store.compact(target)
            self.compacted = target
        return self.compacted

    async def run(self) -> None:
        """Compact every ``interval`` until cancelled."""
        while True:
            try:
                await self.once()
            except ShipmateError as exc:
                log.warning("compaction failed: %s", exc)
            await asyncio.sleep(self.interval)
