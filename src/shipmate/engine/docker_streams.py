"""Bridges between docker-py's blocking generators and asyncio.

docker-py streams (logs follow, events, build output, image save) are blocking iterators.
:func:`aiter_blocking` runs one on its own thread (so a long-idle ``logs -f`` never occupies a
shared pool worker) and hands items over one at a time: the producer waits until the consumer
asks for the next item, so a slow consumer is never buffered against. Closing the async iterator
closes the underlying stream, which unblocks a thread waiting on the socket.

:func:`blocking_chunks` goes the other way: it lets docker-py's request body (run on a worker
thread) pull chunks from an async iterator that lives on the event loop, so a root filesystem
tar is streamed to the engine instead of being held in memory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import datetime
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_END = object()


def _close(it: Any) -> None:
    """Close a docker-py stream; a plain generator busy on another thread refuses, which is
    fine (it ends when the engine ends its response)."""
    close = getattr(it, "close", None)
    if close is None:
        return
    with contextlib.suppress(ValueError, OSError, AttributeError):
        close()


async def aiter_blocking(
    open_stream: Callable[[], tuple[Iterator[Any], Any]],
    convert: Callable[[BaseException], BaseException],
) -> AsyncIterator[Any]:
    """Iterate the items of ``open_stream()`` (called on the stream's own thread; it returns
    the items and the docker-py stream to close when the consumer stops) without blocking the
    loop. Exceptions from opening or iterating pass through ``convert`` (the error mapper)."""
    loop = asyncio.get_running_loop()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="docker-stream")
    holder: list[tuple[Iterator[Any], Any]] = []

    def step() -> Any:
        try:
            if not holder:
                items, raw = open_stream()
                holder.append((iter(items), raw))
            return next(holder[0][0], _END)
        except Exception as exc:
            raise convert(exc) from exc

    try:
        while True:
            item = await loop.run_in_executor(pool, step)
            if item is _END:
                return
            yield item
    finally:
        if holder:
            _close(holder[0][1])
        pool.shutdown(wait=False, cancel_futures=True)


def blocking_chunks(
    chunks: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop
) -> Iterator[bytes]:
    """A blocking generator (for a worker thread) over an async iterator on ``loop``."""
    it = chunks.__aiter__()

    async def pull() -> bytes | None:
        try:
            return await it.__anext__()
        except StopAsyncIteration:
            return None

    while True:
        chunk = asyncio.run_coroutine_threadsafe(pull(), loop).result()
        if chunk is None:
            return
        if chunk:
            yield chunk


def split_lines(chunks: Iterator[bytes]) -> Iterator[str]:
    """Decode a byte stream into lines (without the newline), keeping partial lines until
    their end arrives."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", "replace").rstrip("\r")
    if pending:
        yield pending.decode("utf-8", "replace").rstrip("\r")


@dataclasses.dataclass(frozen=True, order=True)
class LogStamp:
    """The time Docker stamped a log line with (``timestamps=True``), comparable to the
    nanosecond: RFC 3339 with a variable number of fractional digits does not sort as text."""

    seconds: str  # 2024-05-01T12:34:56, fixed width: sorts as text
    nanos: int

    @property
    def epoch(self) -> int:
        """Whole seconds since the epoch, for the ``since`` of a logs request."""
        moment = datetime.datetime.fromisoformat(self.seconds + "+00:00")
        return int(moment.timestamp())


#: The stamp of a line Docker did not stamp: before any other.
NO_STAMP = LogStamp("", 0)


def split_stamp(line: str) -> tuple[LogStamp, str]:
    """``2024-05-01T12:34:56.123456789Z text`` -> (its stamp, ``text``). A line without a
    stamp (not expected from Docker) gets :data:`NO_STAMP` and keeps its text."""
    stamp, _, text = line.partition(" ")
    head, _, fraction = stamp.removesuffix("Z").partition(".")
    if (stamp.endswith("Z") and len(head) == 19 and head[10:11] == "T"
            and (fraction.isdigit() or not fraction)):
        return LogStamp(head, int(fraction[:9].ljust(9, "0"))), text
    return NO_STAMP, line
