"""Watches for the SQLite store: history replay from the ``events`` table, then live events.

The hand-over between history and live events is where watches usually lose or repeat events.
Here a watch is only a *cursor* (the highest revision it has accounted for) plus a queue:

1. it subscribes to the hub first, so every batch committed from then on reaches its queue;
2. it reads history (revision > cursor) from the database, on the same worker thread that
   commits writes, so the read sees exactly the commits before it and moves the cursor to the
   revision it read up to;
3. live batches at or below the cursor are dropped (the history read already had them).

Batches are published from the worker thread right after each commit with
``call_soon_threadsafe``, so they reach the hub in commit (= revision) order. A watch whose
consumer falls too far behind drops its queue and catches up from the database instead of
growing without bound; if that history was compacted meanwhile, it raises
:class:`~shipmate.errors.CompactedError` like any resume from a compacted revision.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Sequence

from shipmate.errors import CompactedError
from shipmate.store.base import Event, Watch

#: Reads history: (prefix, after, page) -> (events, revision read up to, compact revision).
HistoryReader = Callable[[str, int, int], Awaitable[tuple[list[Event], int, int]]]

PAGE = 1000  # events per history read
MAX_QUEUED = 10_000  # live batches buffered per watch before it falls back to history


class WatchHub:
    """Fans committed batches out to the open watches. Event-loop side only."""

    def __init__(self) -> None:
        self._watches: set[SqliteWatch] = set()

    def add(self, watch: SqliteWatch) -> None:
        """Start delivering batches to ``watch``."""
        self._watches.add(watch)

    def discard(self, watch: SqliteWatch) -> None:
        """Stop delivering batches to ``watch``."""
        self._watches.discard(watch)

    def publish(self, revision: int, events: Sequence[Event]) -> None:
        """Deliver the events of one committed revision to every interested watch."""
        for watch in list(self._watches):
            watch.offer(revision, events)

    async def close(self) -> None:
        """Close every watch (their iteration ends)."""
        for watch in list(self._watches):
            await watch.close()


class SqliteWatch(Watch):
    """One prefix watch on a :class:`~shipmate.store.sqlite.SqliteStore`."""

    def __init__(self, hub: WatchHub, read: HistoryReader, prefix: str, cursor: int) -> None:
        self._hub = hub
        self._read = read
        self._prefix = prefix
        self._cursor = cursor  # every event with revision <= cursor is delivered or buffered
        self._queue: asyncio.Queue[tuple[int, list[Event]] | None] = asyncio.Queue()
        self._buffer: collections.deque[Event] = collections.deque()
        self._lagging = True  # history not read up to the present yet
        self._closed = False

    async def start(self, current: Callable[[], Awaitable[int]] | None = None) -> None:
        """Subscribe, then read the first page of history (raising CompactedError early).

        With ``current`` (a watch "from now"), skip history: subscribe, then learn the current
        revision on the worker thread, so each commit is either before it (skipped) or after
        it (delivered live), never lost.
        """
        self._hub.add(self)
        try:
            if current is None:
                await self._catch_up()
            else:
                self._lagging = False
                self._cursor = await current()
        except BaseException:
            await self.close()
            raise

    def offer(self, revision: int, events: Sequence[Event]) -> None:
        """Called by the hub for each committed revision, in revision order."""
        if self._closed or self._lagging:
            return  # the next history read covers it
        matched = [e for e in events if e.kv.key.startswith(self._prefix)]
        if not matched:
            return
        if self._queue.qsize() >= MAX_QUEUED:
            self._drain()
            self._lagging = True  # slow consumer: re-read from the database
            self._queue.put_nowait(None)  # wake a waiting reader
            return
        self._queue.put_nowait((revision, matched))

    def _drain(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    async def _catch_up(self) -> None:
        # Cleared before reading: batches committed after the read arrive through the queue.
        self._lagging = False
        self._drain()
        events, upto, compacted = await self._read(self._prefix, self._cursor, PAGE)
        if self._cursor + 1 < compacted:
            raise CompactedError(self._cursor + 1, compacted)
        self._buffer.extend(events)
        self._cursor = max(self._cursor, upto)
        if len(events) >= PAGE:
            self._lagging = True  # a full page: there may be more; read again before live

    async def __anext__(self) -> Event:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._buffer:
                return self._buffer.popleft()
            if self._lagging:
                await self._catch_up()
                continue
            item = await self._queue.get()
            if item is None:
                continue  # woken by close() or by falling behind
            revision, events = item
            if revision <= self._cursor:
                continue  # already delivered from history
            self._cursor = revision
            self._buffer.extend(events)

    async def close(self) -> None:
        """Stop watching; a pending or later ``__anext__`` ends the iteration."""
        if self._closed:
            return
        self._closed = True
        self._hub.discard(self)
        self._buffer.clear()
        self._drain()
        self._queue.put_nowait(None)


async def open_watch(
    hub: WatchHub, read: HistoryReader, prefix: str, start_revision: int | None,
    current: Callable[[], Awaitable[int]],
) -> SqliteWatch:
    """Open a watch from ``start_revision`` (or from now when None or 0)."""
    if start_revision:
        watch = SqliteWatch(hub, read, prefix, start_revision - 1)
        await watch.start()
    else:
        watch = SqliteWatch(hub, read, prefix, 0)
        await watch.start(current)
    return watch
