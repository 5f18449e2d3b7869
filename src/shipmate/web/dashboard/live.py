"""Server-sent events for the pages' live parts (htmx's sse extension swaps each named
event's HTML into the element with ``sse-swap="<name>"``).

A page's stream re-renders its fragments every :data:`POLL` seconds from a fresh read of the
store and sends the ones whose HTML changed (and lines to append, such as a deploy's
output, as they come); a comment line every :data:`HEARTBEAT` seconds of quiet keeps
proxies from closing it. The router passes ``X-Accel-Buffering: no`` on, so nginx does not
hold events back. A stream ends when its browser goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from aiohttp import web

from shipmate.clock import within

POLL = 1.0
HEARTBEAT = 15.0
#: One thing to send: the event's name, its HTML, and whether it is appended (always sent)
#: rather than a fragment that replaces the last one (sent when it changed).
Frame = tuple[str, str, bool]
Render = Callable[[], Awaitable[Sequence[Frame]]]


def encode(event: str, data: str) -> bytes:
    """One event in the text/event-stream format (each line of ``data`` its own field)."""
    lines = data.replace("\r", "").split("\n")
    return (f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n").encode()


async def open_stream(request: web.Request) -> web.StreamResponse:
    """A prepared text/event-stream answer."""
    resp = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no"})
    await resp.prepare(request)
    return resp


def gone(request: web.Request) -> bool:
    """True when the browser closed the connection."""
    return request.transport is None or request.transport.is_closing()


async def refreshing(request: web.Request, render: Render, poll: float = POLL
                     ) -> web.StreamResponse:
    """Stream ``render()``'s frames every ``poll`` seconds, each fragment only when it
    changed, until the browser leaves."""
    resp = await open_stream(request)
    last: dict[str, str] = {}
    quiet = 0.0
    with contextlib.suppress(ConnectionResetError):
        while not gone(request):
            out = []
            for name, html, append in await render():
                if append or last.get(name) != html:
                    last[name] = html
                    out.append(encode(name, html))
            if out or quiet >= HEARTBEAT:
                await resp.write(b"".join(out) or b": ping\n\n")
                quiet = 0.0
            await asyncio.sleep(poll)
            quiet += poll
    return resp


async def relaying(request: web.Request, lines: AsyncIterator[str],
                   render: Callable[[str], str], event: str) -> web.StreamResponse:
    """Stream each of ``lines`` (rendered) as an ``event`` as it comes, with heartbeats,
    until the lines end or the browser leaves."""
    resp = await open_stream(request)
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=1000)

    async def pump() -> None:
        try:
            async for line in lines:
                await queue.put(line)
        finally:
            await queue.put(None)

    task = asyncio.create_task(pump())
    try:
        with contextlib.suppress(ConnectionResetError):
            while not gone(request):
                try:
                    line = await within(queue.get(), HEARTBEAT)
                except TimeoutError:
                    await resp.write(b": ping\n\n")
                    continue
                if line is None:
                    break
                await resp.write(encode(event, render(line)))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return resp
