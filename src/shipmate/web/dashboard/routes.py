"""Every route of the dashboard, with its kind (:data:`.server.KINDS`): the one table the
guard and the tests read."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from shipmate.web.dashboard import actions, login, pages, streams
from shipmate.web.dashboard.server import HERE, Route

STATIC = HERE / "static"
_STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


async def static(request: web.Request) -> web.StreamResponse:
    """``GET /static/{name}``: the vendored htmx, its sse extension, the style sheet. Only
    the files of the static directory, by exact name."""
    name = request.match_info["name"]
    path = STATIC / name
    if "/" in name or name.startswith(".") or Path(name).suffix not in _STATIC_TYPES \
            or not path.is_file():
        raise web.HTTPNotFound()
    return web.Response(body=path.read_bytes(), content_type=_STATIC_TYPES[path.suffix],
                        headers={"Cache-Control": "public, max-age=3600"})


ROUTES: tuple[Route, ...] = (
    Route("GET", "/login", login.login_form, "public"),
    Route("POST", "/login", login.login, "public"),
    Route("GET", "/static/{name}", static, "public"),
    Route("POST", "/logout", login.logout, "action"),
    Route("GET", "/", pages.overview, "page"),
    Route("GET", "/apps/{app}", pages.app_page, "page"),
    Route("GET", "/machines", pages.machines, "page"),
    Route("GET", "/units/{unit}", pages.unit_page, "page"),
    Route("GET", "/cache", pages.cache_page, "page"),
    Route("GET", "/fragments/apps/{app}/graphs", pages.app_graphs_fragment, "fragment"),
    Route("GET", "/live/overview", streams.overview, "live"),
    Route("GET", "/live/apps/{app}", streams.app, "live"),
    Route("GET", "/live/apps/{app}/logs", streams.app_logs, "live"),
    Route("GET", "/live/machines", streams.machines, "live"),
    Route("GET", "/live/units/{unit}", streams.unit, "live"),
    Route("GET", "/live/cache", streams.cache, "live"),
    Route("POST", "/apps/{app}/scale", actions.scale, "action"),
    Route("POST", "/apps/{app}/restart", actions.restart, "action"),
    Route("POST", "/apps/{app}/rollback", actions.rollback, "action"),
    Route("POST", "/apps/{app}/lock", actions.lock, "action"),
    Route("POST", "/apps/{app}/unlock", actions.unlock, "action"),
)
