"""Logging in and out. The login form carries its own CSRF token, bound to a short-lived
cookie (double submit), so another site cannot log a browser in as its own user either;
attempts are rate-limited (:class:`.auth.RateLimiter`); logins, failed ones and logouts
are audit events (``via`` dashboard)."""

from __future__ import annotations

import logging
import time

from aiohttp import web

from shipmate.errors import ShipmateError
from shipmate.web.dashboard import auth
from shipmate.web.dashboard.server import dash_of, render, user_of
from shipmate.web.dashboard.sessions import TTL, new_token
from shipmate.web.events import AuditEvent

log = logging.getLogger(__name__)
LOGIN_FORM_TTL = 3600.0


def safe_next(target: str) -> str:
    """Where to go after logging in: a path of this site only (never ``//host``)."""
    if target.startswith("/") and not target.startswith(("//", "/\\")) and \
            target.isprintable() and len(target) < 2000:
        return target
    return "/"


def _secure(request: web.Request) -> bool:
    return auth.scheme_of(request.secure, request.headers) == "https"


def _peer(request: web.Request) -> str:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    host = peer[0] if isinstance(peer, tuple) and peer else "unknown"
    return auth.client_address(str(host), request.headers)


async def login_form(request: web.Request, *, status: int = 200, error: str = "",
                     user: str = "") -> web.Response:
    """``GET /login``: the form, with a fresh form token in a cookie and a hidden field."""
    token = new_token()
    resp = render(request, "login.html", status=status, form_token=token, error=error,
                  name=user, next=safe_next(request.query.get("next", "/")))
    resp.set_cookie(auth.LOGIN_COOKIE, token,
                    **auth.cookie_options(_secure(request), LOGIN_FORM_TTL))  # type: ignore[arg-type]
    return resp


async def _note(request: web.Request, actor: str, verb: str, outcome: str = "ok",
                error: str = "") -> None:
    try:
        await dash_of(request).events.record(AuditEvent(
            time.time(), actor, "dashboard", verb, "", f"from {_peer(request)}", outcome,
            error))
    except ShipmateError as exc:  # the login itself is decided: the log says what was missed
        log.error("audit: could not record %s by %s: %s", verb, actor, exc)


async def login(request: web.Request) -> web.StreamResponse:
    """``POST /login``: check the form token, the rate limits, then the password."""
    dash = dash_of(request)
    form = await request.post()
    name, password = str(form.get("user", ""))[:64], str(form.get("password", ""))
    if not auth.tokens_match(str(form.get(auth.CSRF_FIELD, "")),
                             request.cookies.get(auth.LOGIN_COOKIE, "")) or \
            not auth.same_origin(request.headers, auth.scheme_of(request.secure,
                                                                  request.headers),
                                 request.host):
        return await login_form(request, status=403, user=name,
                                error="The form expired or came from another site: try again.")
    keys, now = auth.login_keys(name, _peer(request)), time.monotonic()
    wait = dash.limiter.retry_after(keys, now)
    if wait:
        resp = await login_form(request, status=429, user=name,
                                error=f"Too many failed logins: wait {int(wait) + 1} s.")
        resp.headers["Retry-After"] = str(int(wait) + 1)
        return resp
    record = await dash.users.check(name, password)
    if record is None:
        dash.limiter.failed(keys, now)
        await _note(request, name or "-", "login", "failed", "wrong user name or password")
        return await login_form(request, status=401, user=name,
                                error="Wrong user name or password.")
    token, _ = await dash.sessions.create(name)
    await _note(request, name, "login")
    resp = web.Response(status=303, headers={
        "Location": safe_next(str(form.get("next", "/")))})
    resp.set_cookie(auth.SESSION_COOKIE, token,
                    **auth.cookie_options(_secure(request), TTL))  # type: ignore[arg-type]
    resp.del_cookie(auth.LOGIN_COOKIE, path="/")
    return resp


async def logout(request: web.Request) -> web.StreamResponse:
    """``POST /logout``: end the session (everywhere: it lives in the store)."""
    await dash_of(request).sessions.end(request.cookies.get(auth.SESSION_COOKIE, ""))
    await _note(request, user_of(request).name, "logout")
    resp = web.Response(status=303, headers={"Location": "/login"})
    resp.del_cookie(auth.SESSION_COOKIE, path="/")
    return resp
