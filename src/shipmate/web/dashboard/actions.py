"""The dashboard's actions: scale, restart, rollback, lock and unlock. Each calls the same
:class:`~shipmate.paas.service.Paas` method the daemon's API route does, is recorded in the
audit trail as that route's change would be (same verb and summary, :mod:`shipmate.web.audit`)
with the dashboard user as the actor, and refuses an app the user does not see.

A deploy (scale, restart, rollback) runs in the daemon, not in the request: the answer comes
at once, the deploy's lines go to :class:`DeployLogs`, which the app page's live stream shows,
and leaving the page does not cancel it (``ps:stop`` or ``apps:destroy`` do, as for any
deploy: it is tracked in ``paas.running``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from shipmate.errors import ShipmateError
from shipmate.paas.model import parse_release_label, parse_scale
from shipmate.web.audit import describe
from shipmate.web.audit_http import outcome_of
from shipmate.web.dashboard.pages import visible_app
from shipmate.web.dashboard.server import dash_of, render, user_of
from shipmate.web.events import AuditEvent

log = logging.getLogger(__name__)
Emit = Callable[[str], None]
KEEP_LINES = 500


class DeployLogs:
    """The output of the deploys started from the dashboard, per app, numbered so that a
    page's stream sends each line once."""

    def __init__(self, keep: int = KEEP_LINES) -> None:
        self.keep = keep
        self.seq = 0
        self._lines: dict[str, collections.deque[tuple[int, str]]] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def emit(self, app: str) -> Emit:
        """A function adding lines to ``app``'s output."""
        def add(line: str) -> None:
            self.seq += 1
            self._lines.setdefault(app, collections.deque(maxlen=self.keep)).append(
                (self.seq, line.rstrip("\n")))
        return add

    def since(self, app: str, after: int) -> list[tuple[int, str]]:
        """``app``'s lines numbered above ``after``."""
        return [(n, line) for n, line in self._lines.get(app, ()) if n > after]


async def _record(request: web.Request, route: str, app: str, body: Mapping[str, Any],
                  began: float, error: BaseException | None) -> None:
    told = describe("POST", route, {"app": app}, {}, body)
    if told is None:
        return
    outcome, message = outcome_of(error)
    try:
        await dash_of(request).events.record(AuditEvent(
            time.time(), user_of(request).name, "dashboard", told.verb, told.app,
            told.summary, outcome, message, time.monotonic() - began))
    except ShipmateError as exc:  # the change is made: the log says the trail missed it
        log.error("audit: could not record %s %s: %s", told.verb, app, exc)


def _answer(request: web.Request, app: str, message: str) -> web.Response:
    if request.headers.get("HX-Request"):
        return render(request, "fragments/flash.html", message=message)
    return web.Response(status=303, headers={"Location": f"/apps/{app}"})


async def _deploy(request: web.Request, app: str, route: str, body: Mapping[str, Any],
                  work: Callable[[Emit], Awaitable[None]], started: str) -> web.Response:
    """Start ``work`` as a deploy of ``app`` in the background; answer at once."""
    dash, who = dash_of(request), user_of(request).name
    emit = dash.deploys.emit(app)
    emit(f"=====> {started} (by {who} on the dashboard)")
    began = time.monotonic()

    async def run() -> None:
        error: BaseException | None = None
        try:
            with dash.paas.running.track(app):
                await work(emit)
        except ShipmateError as exc:
            error = exc
            emit(f" !     {exc.message}")
        except BaseException as exc:
            error = exc
            raise
        finally:
            await _record(request, route, app, body, began, error)

    task = asyncio.create_task(run(), name=f"dashboard deploy of {app}")
    dash.deploys.tasks.add(task)
    task.add_done_callback(dash.deploys.tasks.discard)
    return _answer(request, app, started)


async def scale(request: web.Request) -> web.Response:
    """``POST /apps/{app}/scale``: ``process`` and ``count``."""
    app = await visible_app(request)
    form = await request.post()
    formation = parse_scale([f"{form.get('process', '')}={form.get('count', '')}"])
    paas = dash_of(request).paas
    return await _deploy(request, app, "/v1/apps/{app}/scale", {"formation": formation},
                         lambda emit: paas.scale(app, formation, emit),
                         "Scaling " + " ".join(f"{k}={v}" for k, v in formation.items()))


async def restart(request: web.Request) -> web.Response:
    """``POST /apps/{app}/restart``."""
    app = await visible_app(request)
    paas = dash_of(request).paas
    return await _deploy(request, app, "/v1/apps/{app}/restart", {},
                         lambda emit: paas.restart(app, emit), f"Restarting {app}")


async def rollback(request: web.Request) -> web.Response:
    """``POST /apps/{app}/rollback``: ``version`` (``3`` or ``v3``)."""
    app = await visible_app(request)
    form = await request.post()
    version = parse_release_label(str(form.get("version", "")))
    paas = dash_of(request).paas
    await paas.state.release(app, version)  # 404 before anything starts
    return await _deploy(request, app, "/v1/apps/{app}/rollback", {"version": version},
                         lambda emit: paas.rollback(app, version, emit),
                         f"Rolling back to v{version}")


async def _lock(request: web.Request, locked: bool) -> web.Response:
    app = await visible_app(request)
    route = f"/v1/apps/{{app}}/{'lock' if locked else 'unlock'}"
    began, error = time.monotonic(), None
    try:
        await dash_of(request).paas.state.set_locked(app, locked)
    except ShipmateError as exc:
        error = exc
        raise
    finally:
        await _record(request, route, app, {}, began, error)
    return _answer(request, app, f"{app} is {'locked' if locked else 'unlocked'}")


async def lock(request: web.Request) -> web.Response:
    """``POST /apps/{app}/lock``: deploys of the app are refused until unlocked."""
    return await _lock(request, True)


async def unlock(request: web.Request) -> web.Response:
    """``POST /apps/{app}/unlock``."""
    return await _lock(request, False)

