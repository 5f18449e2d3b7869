"""The audit trail on the daemon's API: the middleware that records one event per change
(:mod:`.audit` says which requests are changes and how each is told), who made it, and the
``GET /v1/events`` route ``shipmate events`` reads.

Who: the CLI run by the SSH server for a key holder sends the key's name in
``X-Shipmate-Actor`` (:data:`shipmate.httpapi.client.ACTOR_HEADER`); it is trusted only on
the daemon's unix socket, which only root (and the socket's group) can open: whoever can
open it could change the store directly anyway. Without the header the actor is the local
user the socket's peer credentials name (``root``, normally).
"""

from __future__ import annotations

import contextlib
import json
import logging
import pwd
import re
import socket
import struct
import time
from collections.abc import AsyncGenerator, Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from shipmate import metrics
from shipmate.errors import ShipmateError, ValidationError
from shipmate.httpapi.client import ACTOR_HEADER
from shipmate.httpapi.server import ON_STREAM_END, stream_lines
from shipmate.spec.names import validate_app_name
from shipmate.web.audit import describe, reads_body
from shipmate.web.eventlog import EventLog
from shipmate.web.events import AuditEvent

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_ACTOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}|-")
_EVENTS: web.AppKey[EventLog] = web.AppKey("events", EventLog)
MAX_LIST = 10_000


def actor_of(request: web.Request) -> tuple[str, str]:
    """Who sent ``request`` and how: an SSH key's name (``ssh``) from the header, trusted on
    a unix socket only, or the local user of the socket's peer (``local``)."""
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is None or sock.family != socket.AF_UNIX:
        return "unknown", "network"
    said = request.headers.get(ACTOR_HEADER, "")
    if said:
        return (said if _ACTOR.fullmatch(said) else "invalid"), "ssh"
    return _peer_user(sock), "local"


def _peer_user(sock: socket.socket) -> str:
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        uid = struct.unpack("3i", creds)[1]
    except (OSError, AttributeError, struct.error):
        return "root"  # only root can open the socket where peer credentials are unknown
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def outcome_of(error: BaseException | None) -> tuple[str, str]:
    """The outcome and error message an event records for how its request ended."""
    if error is None:
        return "ok", ""
    if isinstance(error, ShipmateError):
        cancelled = error.code == "deploy_cancelled"
        return ("cancelled" if cancelled else "failed"), error.message
    if isinstance(error, web.HTTPException):
        return "failed", f"HTTP {error.status}: {error.reason}"
    if isinstance(error, Exception):
        return "failed", f"internal error: {type(error).__name__}"
    return "cancelled", ""


async def _json_body(request: web.Request) -> dict[str, object]:
    """The request's JSON object body, or {} (the handler reports a bad body itself)."""
    try:
        data = json.loads(await request.read() or b"{}")
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def audit_middleware(events: EventLog) -> Middleware:
    """A middleware recording each change made through the API in ``events``; it goes inside
    the errors middleware, so it sees a failed change's error before it becomes JSON."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        if resource is None:  # no route matched (404, 405): nothing can change
            return await handler(request)
        route, method = resource.canonical, request.method
        body = await _json_body(request) if reads_body(method, route) else {}
        told = describe(method, route, request.match_info, request.query, body)
        if told is None:
            return await handler(request)
        actor, via = actor_of(request)
        began = time.monotonic()
        recorded = False

        async def record(error: BaseException | None) -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                outcome, message = outcome_of(error)
                await _record(events, AuditEvent(
                    time.time(), actor, via, told.verb, told.app, told.summary, outcome,
                    message, time.monotonic() - began))

        request[ON_STREAM_END] = record  # a stream records before its end is sent
        try:
            response = await handler(request)
        except BaseException as exc:
            await record(exc)
            raise
        await record(None if response.status < 400 else
                     ShipmateError(f"answered HTTP {response.status} {response.reason}"))
        return response

    return middleware


async def _record(events: EventLog, event: AuditEvent) -> None:
    # The change is done (or failed) already: a store that refuses the event must not turn
    # it into an error for the client, but the daemon log says so.
    try:
        await events.record(event)
        metrics.EVENTS_RECORDED.inc(outcome=event.outcome)
    except ShipmateError as exc:
        log.error("audit: could not record %s %s by %s: %s", event.verb, event.app,
                  event.actor, exc)


class SshNote:
    """How the SSH server records a change it makes itself (an app created by its first
    push): ``note(key, verb, app, summary)``; and a command it refused, before it ran
    (``refused``: why; outcome ``refused``)."""

    def __init__(self, events: EventLog) -> None:
        self.events = events

    async def __call__(self, key: str, verb: str, app: str, summary: str, *,
                       refused: str = "") -> None:
        outcome = "refused" if refused else "ok"
        await _record(self.events, AuditEvent(time.time(), key, "ssh", verb, app, summary,
                                              outcome, refused))


def ssh_note(events: EventLog) -> SshNote:
    """The SSH server's :class:`SshNote` for ``events``."""
    return SshNote(events)


def _count(request: web.Request) -> int:
    text = request.query.get("n", "20")
    if not text.isdigit() or not 0 <= int(text) <= MAX_LIST:
        raise ValidationError(f"n must be a number of events from 0 to {MAX_LIST}")
    return int(text)


async def list_events(request: web.Request) -> web.StreamResponse:
    """``GET /v1/events?n=N&app=APP&follow=1``: the newest events as JSON lines, oldest
    first; with ``follow``, then each new one as it is recorded (and an empty line now and
    then while nothing happens)."""
    events = request.app[_EVENTS]
    app = request.query.get("app", "")
    if app:
        validate_app_name(app)
    found, newest, revision = await events.recent(_count(request), app)
    follow = request.query.get("follow") in ("1", "true")

    async def lines() -> AsyncGenerator[str, None]:
        for event in found:
            yield json.dumps(event.to_json(), sort_keys=True)
        if follow:
            async for new in events.follow(newest, revision, app):
                yield "" if new is None else json.dumps(new.to_json(), sort_keys=True)

    async with contextlib.aclosing(lines()) as stream:
        return await stream_lines(request, stream)


def add_events_routes(app: web.Application, events: EventLog) -> None:
    """Register ``GET /v1/events``."""
    app[_EVENTS] = events
    app.router.add_get("/v1/events", list_events)
