"""Follows the router's structured access log (:mod:`.accesslog`) into the metrics.

:class:`Tail` reads the complete lines appended to a file since the last read, like
``tail -F``: it starts at the end (a daemon that restarts does not count old requests again),
survives the file being renamed away (it finishes the old file, then opens the new one) or
truncated (it starts again at the top), and holds at most one partial line of ``max_line``
bytes (a longer line is dropped). Each read takes at most ``chunk`` bytes, so one read is
bounded in time and memory however far behind it is.

:class:`HttpLogFollower` reads and parses in a worker thread every ``interval`` seconds (the
event loop never waits on the disk or on a burst of lines), records the requests on the loop,
and keeps the file small: past ``max_bytes`` it renames it to ``http.log.1`` (replacing the
previous one) and asks nginx to reopen its logs (``SIGUSR1``), as logrotate would.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import BinaryIO

from shipmate.clock import Clock, SystemClock
from shipmate.router.accesslog import Hit, parse_line, record

log = logging.getLogger(__name__)


class Tail:
    """The new complete lines of ``path`` on each :meth:`read` (see the module's doc)."""

    def __init__(self, path: Path, *, chunk: int = 1 << 20, max_line: int = 16 << 10) -> None:
        self.path, self.chunk, self.max_line = path, chunk, max_line
        self._file: BinaryIO | None = None
        self._inode: tuple[int, int] | None = None
        self._partial = b""
        self._skipping = False  # inside an over-long line: drop up to its newline
        self._started = False
        self._drained = False  # the old file read to its end once after it was replaced

    def read(self) -> list[bytes]:
        """The complete lines appended since the last call (at most ``chunk`` bytes)."""
        if self._file is None and not self._open(at_end=not self._started):
            return []
        assert self._file is not None
        self._started = True
        if os.fstat(self._file.fileno()).st_size < self._file.tell():  # truncated
            self._file.seek(0)
            self._partial, self._skipping = b"", False
        data = self._file.read(self.chunk)
        if data or not self._replaced():
            self._drained = False
            return self._split(data)
        if not self._drained:
            # nginx's workers each reopen on their own: give the last of them a read's
            # time to stop writing to the old file.
            self._drained = True
            return []
        self.close()  # the old file is read to its end: the new one from its start
        return self.read() if self._open(at_end=False) else []

    def close(self) -> None:
        """Close the file (the next read opens it again, from its start)."""
        if self._file is not None:
            self._file.close()
        self._file, self._inode, self._partial, self._skipping = None, None, b"", False
        self._drained = False

    def _open(self, *, at_end: bool) -> bool:
        try:
            f = open(self.path, "rb")  # noqa: SIM115 -- held across reads, closed in close()
        except FileNotFoundError:
            self._started = True  # a file that appears later is new: read it whole
            return False
        st = os.fstat(f.fileno())
        if at_end:
            f.seek(st.st_size)
        self._file, self._inode = f, (st.st_dev, st.st_ino)
        return True

    def _replaced(self) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False  # renamed, the new one not made yet: keep the old one open
        return (st.st_dev, st.st_ino) != self._inode

    def _split(self, data: bytes) -> list[bytes]:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if self._skipping and lines:
            lines.pop(0)  # the tail of the over-long line
            self._skipping = False
        if len(self._partial) > self.max_line:
            self._partial, self._skipping = b"", True
        return [line for line in lines if line]


class HttpLogFollower:
    """Feeds nginx's structured access log at ``path`` into the per-app HTTP metrics.
    ``reopen`` makes nginx reopen its log files (after the file was rotated)."""

    def __init__(self, path: Path, reopen: Callable[[], Awaitable[None]], *,
                 interval: float = 1.0, max_bytes: int = 64 << 20,
                 clock: Clock | None = None,
                 sink: Callable[[Hit], None] = record) -> None:
        self.tail = Tail(path)
        self.path, self.reopen, self.interval, self.max_bytes = path, reopen, interval, max_bytes
        self.clock: Clock = clock or SystemClock()
        self.sink = sink
        self.skipped = 0  # lines that were not a request of ours

    async def run(self) -> None:
        """Follow the file until cancelled."""
        try:
            while True:
                await self.poll()
                await self.clock.sleep(self.interval)
        finally:
            self.tail.close()

    async def poll(self) -> int:
        """Read, parse and record what is new (until caught up or a pass's worth); rotate
        the file when it grew past ``max_bytes``. Returns how many requests were recorded."""
        hits, caught_up = await asyncio.to_thread(self._read)
        for hit in hits:
            self.sink(hit)
        if caught_up and _size(self.path) > self.max_bytes:
            await self._rotate()
        return len(hits)

    def _read(self) -> tuple[list[Hit], bool]:
        hits: list[Hit] = []
        for _ in range(8):  # at most 8 chunks a pass, then the loop has its turn
            lines = self.tail.read()
            if not lines:
                return hits, True
            for line in lines:
                hit = parse_line(line)
                if hit is None:
                    self.skipped += 1
                else:
                    hits.append(hit)
        return hits, False

    async def _rotate(self) -> None:
        old = self.path.with_name(self.path.name + ".1")
        try:
            os.replace(self.path, old)
        except FileNotFoundError:
            return
        log.info("router: %s passed %d bytes; rotated to %s", self.path, self.max_bytes, old)
        try:
            await self.reopen()  # the tail finishes the old file, then follows the new one
        except Exception as exc:  # nginx gone: it opens a new file when it starts again
            log.warning("router: nginx did not reopen its logs: %s", exc)


def _size(path: Path) -> int:
    # The file now at ``path``: once rotated, the small new one (the tail may still be
    # finishing the old one), so a rotation happens once.
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
