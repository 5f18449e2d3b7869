"""Server-side helpers of the daemon's HTTP API (aiohttp), for every subsystem that adds
routes: the one place errors become JSON answers, JSON request bodies, and streaming text
lines (with a coroutine's ``emit(line)`` progress turned into such a stream)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from shipmate.errors import ShipmateError, ValidationError

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Emit = Callable[[str], None]
_DONE = object()
#: Called with the error a streamed answer ended with (None: it went well; its status was
#: 200 by then) before the stream's end is sent: the audit trail records the change here, so
#: that it is in the trail when the client sees the end.
StreamEnd = Callable[[ShipmateError | None], Awaitable[None]]
ON_STREAM_END: web.RequestKey[StreamEnd] = web.RequestKey("on_stream_end")


def error_response(exc: ShipmateError) -> web.Response:
    """The JSON body every API error has: ``{"error": {"code", "message", "hint"}}``."""
    return web.json_response({"error": exc.to_dict()}, status=exc.status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map ShipmateError (and bugs) to JSON error answers; the one place this happens."""
    try:
        return await handler(request)
    except ShipmateError as exc:
        return error_response(exc)
    except web.HTTPException:
        raise
    except Exception as exc:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(ShipmateError(f"internal error: {type(exc).__name__}: {exc}",
                                            hint="see the daemon log (shipmate status shows it)"))


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body, or a 400 saying what was wrong (also for what JSON
    allows but nothing here can use: nesting past 100 levels, lone UTF-16 surrogates)."""
    try:
        data = await request.json()
    except ValueError as exc:
        raise ValidationError(f"request body is not JSON: {exc}") from exc
    except RecursionError:
        raise ValidationError("request body is nested too deeply") from None
    if not isinstance(data, dict):
        raise ValidationError("request body must be a JSON object")
    _check_json(data, 0)
    return data


def _check_json(data: Any, depth: int) -> None:
    if depth > 100:
        raise ValidationError("request body is nested too deeply")
    if isinstance(data, str):
        try:
            data.encode()
        except UnicodeEncodeError:
            raise ValidationError("request body has a lone surrogate (a \\ud800-\\udfff "
                                  "escape) in a string", hint="send UTF-8 text") from None
    elif isinstance(data, dict):
        for key, value in data.items():
            _check_json(key, depth + 1)
            _check_json(value, depth + 1)
    elif isinstance(data, list):
        for item in data:
            _check_json(item, depth + 1)


async def stream_lines(request: web.Request, lines: AsyncIterator[str]) -> web.StreamResponse:
    """Stream text lines to the client as they come; an error becomes a final JSON line that
    :meth:`shipmate.httpapi.client.DaemonClient.stream` turns back into the exception."""
    resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    await resp.prepare(request)
    error: ShipmateError | None = None
    try:
        try:
            async for line in lines:
                await resp.write((line.rstrip("\n") + "\n").encode())
        except ShipmateError as exc:
            error = exc
        except ConnectionResetError:
            raise
        except Exception as exc:  # a bug: still end the stream, or the client waits forever
            log.exception("unhandled error while streaming %s %s", request.method, request.path)
            error = ShipmateError(f"internal error: {type(exc).__name__}: {exc}",
                                  hint="see the daemon log")
        if (on_end := request.get(ON_STREAM_END)) is not None:
            await on_end(error)
        if error is not None:
            await resp.write((json.dumps({"error": error.to_dict()}) + "\n").encode())
        await resp.write_eof()
    except ConnectionResetError:  # the client went away: nobody is left to tell
        log.info("the client of %s %s went away", request.method, request.path)
    return resp


async def lines_of(work: Callable[[Emit], Awaitable[object]]) -> AsyncIterator[str]:
    """Run ``work(emit)``; yield each emitted line as it comes; re-raise its error at the end.

    If the consumer goes away (client disconnected), the work goes on to completion: a deploy
    must not be left half done because a terminal closed.
    """
    queue: asyncio.Queue[object] = asyncio.Queue()

    async def runner() -> None:
        try:
            await work(queue.put_nowait)
        finally:
            queue.put_nowait(_DONE)

    task = asyncio.create_task(runner())
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                break
            yield str(item)
    finally:
        if not task.done():
            await asyncio.shield(task)
    task.result()
