"""The dashboard's aiohttp application: its route table, the middleware that keeps out
whoever has no session (and every POST without the session's CSRF token or from another
origin), and its listener on ``dashboard_port``.

Every route is declared in :data:`ROUTES` with its kind, which says how a request without
a session is refused: a ``page`` is answered 303 to ``/login``, a ``fragment``, ``live``
stream or ``action`` 401; only ``public`` routes (the login form and the static files) are
served to anyone. ``tests/unit/web/test_dashboard_auth.py`` walks this table.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
from aiohttp import web

from shipmate.errors import ShipmateError
from shipmate.paas import acl
from shipmate.web.dashboard import auth
from shipmate.web.dashboard.auth import Principal, RateLimiter
from shipmate.web.dashboard.sessions import Sessions
from shipmate.web.eventlog import EventLog
from shipmate.web.httpstats import Sampler
from shipmate.web.users import Users

if TYPE_CHECKING:
    from shipmate.cache.server import CacheServer
    from shipmate.paas.service import Paas
    from shipmate.store.base import Store

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HERE = Path(__file__).parent
KINDS = ("public", "page", "fragment", "live", "action")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY", "Cache-Control": "no-store"}


@dataclasses.dataclass
class Dashboard:
    """What the dashboard's handlers use (one per daemon)."""

    store: Store
    paas: Paas
    users: Users
    events: EventLog
    cache: CacheServer | None = None
    sessions: Sessions = dataclasses.field(init=False)
    limiter: RateLimiter = dataclasses.field(default_factory=RateLimiter)
    sampler: Sampler = dataclasses.field(default_factory=Sampler)
    wall: Callable[[], float] = time.time
    templates: jinja2.Environment = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        from shipmate.web.dashboard.actions import DeployLogs
        from shipmate.web.dashboard.data import Memo
        from shipmate.web.dashboard.recent import RecentEvents

        self.sessions = Sessions(self.store, wall=self.wall)
        self.deploys = DeployLogs()
        self.recent = RecentEvents(self.events)
        self.memo = Memo()  # decoded store records, shared by every page's reads
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True, undefined=jinja2.StrictUndefined, auto_reload=False)


@dataclasses.dataclass(frozen=True)
class Route:
    """One route of the dashboard and how it is guarded."""

    method: str
    path: str
    handler: Handler
    kind: str


DASHBOARD: web.AppKey[Dashboard] = web.AppKey("dashboard", Dashboard)
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal", Principal)
_KIND: web.AppKey[dict[tuple[str, str], str]] = web.AppKey("kinds", dict)


def dash_of(request: web.Request) -> Dashboard:
    """The dashboard serving ``request``."""
    return request.app[DASHBOARD]


def user_of(request: web.Request) -> Principal:
    """The logged-in user of ``request`` (the middleware has checked there is one)."""
    return request[PRINCIPAL]


def _kind(request: web.Request) -> str:
    resource = request.match_info.route.resource
    if resource is None:
        return "fragment"  # no such route: refused like a fragment until logged in
    return request.app[_KIND].get((request.method, resource.canonical), "fragment")


def _refuse(request: web.Request, kind: str) -> web.Response:
    if kind == "page" and request.method == "GET":
        target = "/login?" + urllib.parse.urlencode({"next": request.path_qs})
        return web.Response(status=303, headers={"Location": target})
    return web.Response(status=401, text="log in first\n",
                        headers={"WWW-Authenticate": 'Cookie realm="shipmate"'})


async def principal(request: web.Request) -> Principal | None:
    """The user whose live session ``request`` carries (their record is read again, so a
    removed user is out at once and a changed admin flag counts)."""
    dash = dash_of(request)
    session = await dash.sessions.get(request.cookies.get(auth.SESSION_COOKIE, ""))
    if session is None:
        return None
    record = await dash.users.get(session.user)
    if record is None:
        return None
    # one rule for SSH keys and dashboard users: an admin key of the same name makes an admin
    return Principal(session.user, await acl.is_admin(dash.store, session.user), session.csrf)


def forged(request: web.Request, expected: str, given: str) -> str:
    """Why a POST is refused as cross-site ('' when it is not)."""
    scheme = auth.scheme_of(request.secure, request.headers)
    if not auth.same_origin(request.headers, scheme, request.host):
        return "the request comes from another site"
    if not auth.tokens_match(given, expected):
        return "the CSRF token is missing or wrong (reload the page)"
    return ""


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse what needs a session without one, and every POST that could be forged."""
    kind = _kind(request)
    if kind != "public":
        user = await principal(request)
        if user is None:
            return _headers(_refuse(request, kind))
        if request.method == "POST":
            form = await request.post()
            given = request.headers.get(auth.CSRF_HEADER) or str(form.get(auth.CSRF_FIELD, ""))
            why = forged(request, user.csrf, given)
            if why:
                return _headers(web.Response(status=403, text=f"refused: {why}\n"))
        request[PRINCIPAL] = user
    try:
        response = await handler(request)
    except ShipmateError as exc:
        response = error_page(request, exc)
    return _headers(response)


def _headers(response: web.StreamResponse) -> web.StreamResponse:
    if not response.prepared:  # a stream's headers are sent already
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
    return response


def render(request: web.Request, template: str, status: int = 200, **context: object
           ) -> web.Response:
    """A template rendered as the answer."""
    page = dash_of(request).templates.get_template(template)
    user = request.get(PRINCIPAL)
    text = page.render(user=user, csrf=user.csrf if user else "", **context)
    return web.Response(status=status, text=text, content_type="text/html")


def error_page(request: web.Request, exc: ShipmateError) -> web.Response:
    """A refused or failed request, as a page or (htmx) a fragment, with the error's
    HTTP status."""
    name = "fragments/error.html" if request.headers.get("HX-Request") else "error.html"
    return render(request, name, status=exc.status, message=exc.message, hint=exc.hint or "")


def make_app(dash: Dashboard) -> web.Application:
    """The dashboard's application with every route of :data:`ROUTES`."""
    from shipmate.web.dashboard.routes import ROUTES

    app = web.Application(middlewares=[guard], client_max_size=64 * 1024)
    app[DASHBOARD] = dash
    app[_KIND] = {}
    for route in ROUTES:
        if route.kind not in KINDS:
            raise ValueError(f"unknown route kind {route.kind!r} of {route.path}")
        resource = app.router.add_route(route.method, route.path, route.handler).resource
        assert resource is not None
        app[_KIND][(route.method, resource.canonical)] = route.kind
    return app
