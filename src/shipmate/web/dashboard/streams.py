"""Each page's live stream (``GET /live/...``): the page's fragments re-rendered by
:mod:`.pages` and sent when they change (:func:`.live.refreshing`), the app's deploy output
as it comes, and the app's container logs."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from shipmate.errors import ShipmateError
from shipmate.web.dashboard import live, pages
from shipmate.web.dashboard.live import Frame
from shipmate.web.dashboard.server import dash_of

LOG_LINES = 50


def _frames(parts: dict[str, str]) -> list[Frame]:
    return [(name, text, False) for name, text in parts.items()]


async def overview(request: web.Request) -> web.StreamResponse:
    """``GET /live/overview``."""
    async def render() -> Sequence[Frame]:
        return _frames(await pages.overview_parts(request))
    return await live.refreshing(request, render)


def _line(text: str) -> str:
    return f'<div class="line">{html.escape(text)}</div>'


async def app(request: web.Request) -> web.StreamResponse:
    """``GET /live/apps/{app}?after=N``: the app's fragments, and the lines of its
    dashboard deploys numbered above N."""
    name = await pages.visible_app(request)
    text = request.query.get("after", "0")
    after = int(text) if text.isdigit() else 0
    deploys = dash_of(request).deploys

    async def render() -> Sequence[Frame]:
        nonlocal after
        frames = _frames((await pages.app_parts(request, name))[0])
        new = deploys.since(name, after)
        if new:
            after = new[-1][0]
            frames.append(("deploy", "".join(_line(line) for _, line in new), True))
        return frames
    return await live.refreshing(request, render)


async def app_logs(request: web.Request) -> web.StreamResponse:
    """``GET /live/apps/{app}/logs``: the app's container logs on this machine, followed."""
    name = await pages.visible_app(request)
    paas = dash_of(request).paas

    async def lines() -> AsyncIterator[str]:
        try:
            async for line in paas.logs(name, LOG_LINES, True, ""):
                yield line
        except ShipmateError as exc:
            yield f"(no logs: {exc.message})"
    return await live.relaying(request, lines(), _line, "log")


async def machines(request: web.Request) -> web.StreamResponse:
    """``GET /live/machines``."""
    async def render() -> Sequence[Frame]:
        return _frames(await pages.machines_parts(request))
    return await live.refreshing(request, render)


async def unit(request: web.Request) -> web.StreamResponse:
    """``GET /live/units/{unit}``: the unit's journal tail as it grows."""
    name = await pages.visible_unit(request)

    async def render() -> Sequence[Frame]:
        return _frames(await pages.journal_parts(request, name))
    return await live.refreshing(request, render)


async def cache(request: web.Request) -> web.StreamResponse:
    """``GET /live/cache``."""
    async def render() -> Sequence[Frame]:
        return _frames(await pages.cache_parts(request))
    return await live.refreshing(request, render, poll=2.0)
