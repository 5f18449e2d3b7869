"""The dashboard's pages: read (:mod:`.data`), shape (:mod:`.views`), render (templates).
Each page's live parts are rendered by the same functions here, for the page and for its
stream (:mod:`.live`), so what arrives live looks like what was loaded."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from shipmate.agent.publish import read_published
from shipmate.errors import NotFoundError, ValidationError
from shipmate.spec.names import validate_app_name
from shipmate.spec.unitname import parse_unit_name
from shipmate.web.dashboard import access, views
from shipmate.web.dashboard.data import AppDetail, Platform, read_app, read_platform
from shipmate.web.dashboard.server import Dashboard, dash_of, render, user_of

RECENT_EVENTS = 20
APP_EVENTS = 50
JOURNAL_LINES = 50


def fragment(dash: Dashboard, name: str, **context: Any) -> str:
    """One fragment's HTML (``templates/fragments/<name>.html``)."""
    return dash.templates.get_template(f"fragments/{name}.html").render(**context)


def cache_snapshot(dash: Dashboard) -> tuple[dict[str, Any] | None,
                                             list[tuple[str, str, int, float]]]:
    """The cache's counters and its entries (url, format, size, last use); None without
    a cache on this machine."""
    if dash.cache is None:
        return None, []
    entries = [(e.url, e.fmt, e.size, e.accessed_at) for e in dash.cache.storage.entries()]
    return dash.cache.snapshot(), entries


# -- overview -------------------------------------------------------------------------------

async def overview_parts(request: web.Request) -> dict[str, str]:
    """The overview's live fragments: the summary cards, the apps and the recent events."""
    dash, user = dash_of(request), user_of(request)
    platform, events = await asyncio.gather(read_platform(dash.store, dash.memo),
                                            dash.recent.read(RECENT_EVENTS * 2))
    apps = views.app_rows(platform, user, dash.paas.config.http_port)
    snap, _ = cache_snapshot(dash)
    summary = {"machines": len(platform.machines), "apps": len(apps),
               "units": len(platform.units) if user.admin else sum(a["instances"] for a in apps),
               "running": sum(1 for s in platform.states if s.active_state == "active")
               if user.admin else sum(a["running"] for a in apps),
               "hit_rate": views.hit_rate(snap["total"]) if snap else "-"}
    rows = views.event_rows(events, user, platform.grants)[:RECENT_EVENTS]
    return {"summary": fragment(dash, "summary", s=summary),
            "apps": fragment(dash, "apps", apps=apps),
            "machines": fragment(dash, "machines", machines=views.machine_rows(platform)),
            "events": fragment(dash, "events", events=rows)}


async def overview(request: web.Request) -> web.Response:
    """``GET /``: machines, apps, units, the cache's hit rate, recent events."""
    return render(request, "overview.html", parts=await overview_parts(request))


# -- an app ---------------------------------------------------------------------------------

async def visible_app(request: web.Request, platform: Platform | None = None) -> str:
    """The route's app, when it exists and the user sees it; else 404 (the same answer for
    both, so a name does not leak)."""
    app = validate_app_name(request.match_info["app"])
    dash = dash_of(request)
    grants = platform.grants if platform else await access.read_grants(dash.store)
    if not access.may_see(user_of(request), app, grants) or \
            not await dash.paas.state.exists(app):
        raise NotFoundError(f"App {app} does not exist")
    return app


async def app_parts(request: web.Request, app: str) -> tuple[dict[str, str], AppDetail]:
    """The app page's live fragments (status, instances, releases, events) and the app's
    records they were made from."""
    dash = dash_of(request)
    platform, detail, events = await asyncio.gather(
        read_platform(dash.store, dash.memo), read_app(dash.paas, app),
        dash.recent.read(APP_EVENTS, app))
    rows = views.instances(platform, app)
    return {"status": fragment(dash, "app_status", d=detail, running=views.running(rows),
                               total=len(rows)),
            "instances": fragment(dash, "instances", rows=rows),
            "releases": fragment(dash, "releases", app=app, csrf=user_of(request).csrf,
                                 rows=views.release_rows(detail.releases, detail.current,
                                                         events)),
            "events": fragment(dash, "events", events=views.event_rows(
                events, user_of(request), platform.grants)[:RECENT_EVENTS])}, detail


async def app_page(request: web.Request) -> web.Response:
    """``GET /apps/{app}``."""
    dash = dash_of(request)
    app = await visible_app(request)
    parts, detail = await app_parts(request, app)
    deploy = dash.deploys.since(app, 0)
    return render(request, "app.html", app=app, d=detail, parts=parts,
                  config=views.config_rows(detail.config_keys),
                  graphs=graphs(dash, app), deploy=deploy,
                  after=deploy[-1][0] if deploy else dash.deploys.seq)


def graphs(dash: Dashboard, app: str) -> str:
    """``app``'s request graphs, from the samples of the metrics ``/metrics`` serves."""
    sampler = dash.sampler
    return fragment(dash, "graphs", g=views.request_graphs(sampler.of(app), sampler.bounds,
                                                           dash.wall()))


async def app_graphs_fragment(request: web.Request) -> web.Response:
    """``GET /fragments/apps/{app}/graphs``: the request graphs, polled by the page."""
    app = await visible_app(request)
    return web.Response(text=graphs(dash_of(request), app), content_type="text/html")


# -- machines, units, the cache ----------------------------------------------------------------

async def machines_parts(request: web.Request) -> dict[str, str]:
    """The machines page's live fragments."""
    dash, user = dash_of(request), user_of(request)
    platform = await read_platform(dash.store, dash.memo)
    return {"machines": fragment(dash, "machines", machines=views.machine_rows(platform)),
            "units": fragment(dash, "units", units=views.unit_rows(platform, user))}


async def machines(request: web.Request) -> web.Response:
    """``GET /machines``: fleet's view, where each unit runs and its state."""
    return render(request, "machines.html", parts=await machines_parts(request))


async def visible_unit(request: web.Request) -> str:
    """The route's unit, when it exists and the user sees it (an admin: every unit; anyone
    else: the units of their apps)."""
    try:
        unit = parse_unit_name(request.match_info["unit"]).full
    except ValidationError as exc:
        raise NotFoundError(f"Unit {request.match_info['unit'][:80]} not found") from exc
    dash, user = dash_of(request), user_of(request)
    platform = await read_platform(dash.store, dash.memo)
    app = views.app_of_unit(unit)
    if unit not in platform.units or not (
            user.admin or (app and access.may_see(user, app, platform.grants))):
        raise NotFoundError(f"Unit {unit} not found")
    return unit


async def journal_parts(request: web.Request, unit: str) -> dict[str, str]:
    """Where a unit runs and its journal tail as each machine running it published it."""
    dash = dash_of(request)
    platform, published = await asyncio.gather(read_platform(dash.store, dash.memo),
                                                read_published(dash.store, unit))
    blocks = [{"machine": mid, "lines": list(rec.get("lines") or [])[-JOURNAL_LINES:]}
              for mid, rec in sorted(published.items())]
    return {"units": fragment(dash, "units", units=views.unit_rows(
                platform, user_of(request), only=unit)),
            "journal": fragment(dash, "journal", blocks=blocks)}


async def unit_page(request: web.Request) -> web.Response:
    """``GET /units/{unit}``: where it runs and its journal."""
    unit = await visible_unit(request)
    return render(request, "unit.html", unit=unit, parts=await journal_parts(request, unit))


async def cache_parts(request: web.Request) -> dict[str, str]:
    """The cache page's live fragment."""
    snap, entries = cache_snapshot(dash_of(request))
    return {"cache": fragment(dash_of(request), "cache", c=views.cache_view(snap, entries))}


async def cache_page(request: web.Request) -> web.Response:
    """``GET /cache``: hits, bytes saved per format, the largest files."""
    return render(request, "cache.html", parts=await cache_parts(request))

