"""The audit trail in the store: record an event, read the newest, follow new ones.

The keys and rules are in :mod:`.events`. Recording is one compare-and-swap transaction on the
counter (retried when another recorder, on this machine or another, took the number first);
it also deletes the event that just left the window of ``limit``. Every ``PRUNE_EVERY``
events a sweep deletes whatever else lies beyond it (events kept while ``limit`` was larger).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncGenerator, AsyncIterator

from shipmate.clock import within
from shipmate.errors import CompactedError, ConflictError, StoreError
from shipmate.store.base import Compare, Op, Store, Watch
from shipmate.web.events import (
    PREFIX,
    SEQ_KEY,
    AuditEvent,
    block_size,
    blocks_back,
    event_key,
    matches,
    seq_of,
)

log = logging.getLogger(__name__)
PRUNE_EVERY = 1000
_ATTEMPTS = 50
_DELETE_BATCH = 100  # deletes per transaction (etcd allows 128 operations)
#: While following, an empty line this often lets a server notice a client that has gone.
HEARTBEAT = 15.0


class EventLog:
    """The store's audit trail, keeping the newest ``limit`` events."""

    def __init__(self, store: Store, limit: int = 10_000) -> None:
        if limit < 1:
            raise ValueError("the events limit must be at least 1")
        self.store, self.limit = store, limit

    async def record(self, event: AuditEvent) -> AuditEvent:
        """Store ``event`` under the next number; returns it with its ``seq``."""
        for _ in range(_ATTEMPTS):
            kv = await self.store.get(SEQ_KEY)
            seq = (int(kv.value) if kv and kv.value.isdigit() else 0) + 1
            done = dataclasses.replace(event, seq=seq)
            ops = [Op.put(SEQ_KEY, str(seq)), Op.put(event_key(seq), done.encode())]
            if seq > self.limit:
                ops.append(Op.delete(event_key(seq - self.limit)))
            res = await self.store.txn([Compare.mod_is(SEQ_KEY, kv.mod_revision if kv else 0)],
                                       ops)
            if res.succeeded:
                if seq % PRUNE_EVERY == 0:
                    await self.prune(seq)
                return done
        raise ConflictError("too many changes at once: an audit event could not be recorded",
                            hint="try again")

    async def prune(self, newest: int) -> int:
        """Delete events older than the window ending at ``newest``; how many went."""
        kvs, _ = await self.store.range(PREFIX)
        old = [kv.key for kv in kvs if (s := seq_of(kv.key)) is not None
               and s <= newest - self.limit]
        for start in range(0, len(old), _DELETE_BATCH):
            await self.store.txn([], [Op.delete(k) for k in old[start:start + _DELETE_BATCH]])
        return len(old)

    async def newest(self) -> tuple[int, int]:
        """The last event's number (0: none yet) and the store revision it was read at."""
        res = await self.store.txn([], [Op.get(SEQ_KEY)])
        found = res.responses[0] if res.responses else ()
        value = found[0].value if found else b"0"
        return (int(value) if value.isdigit() else 0), res.revision

    async def recent(self, n: int, app: str = "") -> tuple[list[AuditEvent], int, int]:
        """The newest ``n`` events (of ``app`` if given), oldest first; the number of the
        newest event and the store revision, to follow from. Reads the key blocks that hold
        them, newest first, not the whole trail."""
        newest, revision = await self.newest()
        oldest = max(1, newest - self.limit + 1)
        found: list[AuditEvent] = []
        if n <= 0:
            return found, newest, revision
        for prefix in blocks_back(newest, oldest, block_size(n)):
            kvs, _ = await self.store.range(prefix)
            block = [e for kv in kvs if (e := AuditEvent.decode(kv.value)) is not None
                     and oldest <= e.seq <= newest and matches(e, app)]
            found = block + found
            if len(found) >= n:
                break
        return found[-n:], newest, revision

    async def since(self, after: int, app: str = "") -> list[AuditEvent]:
        """Every kept event numbered above ``after`` (of ``app`` if given), oldest first."""
        kvs, _ = await self.store.range(PREFIX)
        events = (AuditEvent.decode(kv.value) for kv in kvs)
        return [e for e in events if e is not None and e.seq > after and matches(e, app)]

    async def follow(self, after: int, revision: int, app: str = ""
                     ) -> AsyncIterator[AuditEvent | None]:
        """Events numbered above ``after`` as they are recorded (the store's changes from
        ``revision + 1`` on), with None every :data:`HEARTBEAT` seconds of quiet. A watch that
        breaks or falls behind compaction is re-opened after re-reading what it missed."""
        last = after
        while True:
            async with contextlib.aclosing(self._watch(revision, app)) as items:
                async for item in items:
                    if item is None or item.seq > last:
                        last = item.seq if item is not None else last
                        yield item
            _, revision = await self.newest()
            for event in await self.since(last, app):
                last = event.seq
                yield event

    async def _watch(self, revision: int, app: str
                     ) -> AsyncGenerator[AuditEvent | None, None]:
        """The events of ``app`` from one watch, until it fails (None: a heartbeat)."""
        try:
            watch = await self.store.watch(PREFIX, start_revision=revision + 1)
        except CompactedError:
            return
        queue: asyncio.Queue[AuditEvent | Exception] = asyncio.Queue()
        pump = asyncio.create_task(_pump(watch, queue))
        try:
            while True:
                try:
                    item = await within(queue.get(), HEARTBEAT)
                except TimeoutError:
                    yield None
                    continue
                if isinstance(item, Exception):
                    log.info("events: the watch ended (%s); reading again", item)
                    return
                if matches(item, app):
                    yield item
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, StoreError):
                await pump
            await watch.close()


async def _pump(watch: Watch, queue: asyncio.Queue[AuditEvent | Exception]) -> None:
    try:
        async for change in watch:
            if change.type == "put":
                event = AuditEvent.decode(change.kv.value)
                if event is not None:
                    queue.put_nowait(event)
        queue.put_nowait(StoreError("the watch ended"))
    except (CompactedError, StoreError) as exc:
        queue.put_nowait(exc)
