"""``cron:*`` routes on the daemon API (served by :class:`.cron_service.CronTasks`)."""

from __future__ import annotations

from aiohttp import web

from shipmate.httpapi.server import json_body, stream_lines
from shipmate.paas.api import flag
from shipmate.paas.cron import validate_id
from shipmate.paas.cron_service import CronTasks
from shipmate.spec.names import validate_app_name

_CRON: web.AppKey[CronTasks] = web.AppKey("cron")


def _app(request: web.Request) -> str:
    return validate_app_name(request.match_info["app"])


def _id(request: web.Request) -> str:
    return validate_id(request.match_info["id"])


async def list_tasks(request: web.Request) -> web.Response:
    return web.json_response(await request.app[_CRON].list(_app(request)))


async def run_task(request: web.Request) -> web.StreamResponse:
    body = await json_body(request)
    lines = await request.app[_CRON].run_now(_app(request), _id(request),
                                             detach=flag(body, "detach", False))
    return await stream_lines(request, lines)


async def suspend(request: web.Request) -> web.Response:
    return web.json_response(await request.app[_CRON].set_suspended(
        _app(request), _id(request), True))


async def resume(request: web.Request) -> web.Response:
    return web.json_response(await request.app[_CRON].set_suspended(
        _app(request), _id(request), False))


def add_cron_routes(app: web.Application, tasks: CronTasks) -> None:
    """Register the ``cron:*`` routes."""
    app[_CRON] = tasks
    r = app.router
    r.add_get("/v1/apps/{app}/cron", list_tasks)
    r.add_post("/v1/apps/{app}/cron/{id}/run", run_task)
    r.add_post("/v1/apps/{app}/cron/{id}/suspend", suspend)
    r.add_post("/v1/apps/{app}/cron/{id}/resume", resume)
