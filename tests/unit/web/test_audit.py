"""Which requests are changes and how each is told (no config value, key or unit text ever
reaches a summary), and the middleware on a real unix socket: who (the SSH key's header, or
the local user), what, and how it ended, streamed deploys included."""

from __future__ import annotations

import os
import pwd
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web

from shipmate.config import load as load_config
from shipmate.daemon.api import make_app
from shipmate.errors import NotFoundError, ValidationError
from shipmate.httpapi.client import ACTOR_ENV, DaemonClient
from shipmate.httpapi.server import errors_middleware, json_body, lines_of, stream_lines
from shipmate.testing.store import memory_store
from shipmate.web.audit import AUDITED, NOT_AUDITED, READ_METHODS, describe
from shipmate.web.audit_http import add_events_routes, audit_middleware
from shipmate.web.eventlog import EventLog
from shipmate.web.events import AuditEvent


def _api_routes() -> set[tuple[str, str]]:
    """(method, route) of every route the daemon's API serves."""
    wiring = SimpleNamespace(store=None, agent=None, paas=None, certs=object(),
                             letsencrypt=object(), events=None, cache=None, engine=None,
                             users=object(), cron=object(),
                             config=load_config({}, state_dir=Path("/nonexistent")))
    app = make_app(SimpleNamespace(wiring=wiring))  # type: ignore[arg-type]
    return {(r.method, r.resource.canonical) for r in app.router.routes()
            if r.resource is not None}


def test_every_change_route_is_declared() -> None:
    changes = {(m, path) for m, path in _api_routes() if m not in READ_METHODS}
    missing = sorted(changes - set(AUDITED) - NOT_AUDITED)
    assert not missing, f"declare these in shipmate.web.audit.AUDITED: {missing}"
    stale = sorted((set(AUDITED) | NOT_AUDITED) - changes)
    assert not stale, f"AUDITED names routes the API does not have: {stale}"


def test_config_values_never_reach_the_summary() -> None:
    told = describe("PATCH", "/v1/apps/{app}/config", {"app": "web"}, {},
                    {"set": {"SECRET_KEY": "hunter2", "A": "b=c"}, "restart": False})
    assert told is not None
    assert (told.verb, told.app, told.summary) == ("config:set", "web",
                                                   "set A SECRET_KEY (no restart)")
    told = describe("PATCH", "/v1/apps/{app}/config", {"app": "web"}, {},
                    {"unset": ["SECRET_KEY"]})
    assert told is not None and (told.verb, told.summary) == ("config:unset", "unset SECRET_KEY")


def test_what_else_is_left_out_of_summaries() -> None:
    unit = {"name": "db.service", "text": "[Service]\nEnvironment=PASSWORD=hunter2\n"}
    cases = [
        ("POST", "/v1/fleet/submit", {}, {"units": [unit]}, ("fleet submit", "db.service")),
        ("POST", "/v1/apps/{app}/run", {"app": "web"},
         {"command": ["psql", "postgres://u:hunter2@db/x"]}, ("run", "psql (+1 arguments)")),
        ("POST", "/v1/letsencrypt/settings", {}, {"name": "email", "value": "hunter2@x.org"},
         ("letsencrypt:set", "email")),
        ("POST", "/v1/ssh-keys", {}, {"name": "bob", "key": "ssh-ed25519 AAAAhunter2"},
         ("ssh-keys:add", "bob")),
    ]
    for method, route, match, body, want in cases:
        told = describe(method, route, match, {}, body)
        assert told is not None and (told.verb, told.summary) == want
        assert "hunter2" not in told.summary


def test_fleet_verbs_from_the_desired_state() -> None:
    def verb(body: dict[str, Any]) -> str:
        told = describe("POST", "/v1/fleet/desired", {}, {}, {"units": ["a.service"], **body})
        assert told is not None
        return told.verb
    assert verb({"state": "launched"}) == "fleet start"
    assert verb({"state": "loaded"}) == "fleet load"
    assert verb({"state": "loaded", "command": "stop"}) == "fleet stop"
    assert verb({"state": "launched", "command": "stop"}) == "fleet start"  # state decides
    assert verb({"state": "inactive"}) == "fleet unload"


def test_everyday_and_service_changes() -> None:
    def told(method: str, route: str, match: dict[str, str], body: dict[str, Any]
             ) -> tuple[str, str, str]:
        got = describe(method, route, match, {}, body)
        assert got is not None
        return got.verb, got.app, got.summary
    assert told("POST", "/v1/apps/{app}/rename", {"app": "old"}, {"name": "new"}) == \
        ("apps:rename", "old", "to new")
    assert told("POST", "/v1/apps/{app}/resources", {"app": "web"},
                {"kind": "reserve", "process_type": "worker", "set": {"memory": "256m"},
                 "clear": False}) == ("resource:reserve", "web", "worker memory=256m")
    assert told("POST", "/v1/apps/{app}/ports", {"app": "web"}, {"add": ["http:80:5000"]}) \
        == ("ports:add", "web", "http:80:5000")
    assert told("POST", "/v1/services/{kind}/{name}/link", {"kind": "postgres", "name": "db"},
                {"app": "web", "alias": "REPORTS_DB"}) == \
        ("postgres:link", "web", "db as REPORTS_DB")
    assert told("POST", "/v1/services/{kind}", {"kind": "redis"}, {"name": "cache"}) == \
        ("redis:create", "", "cache")


def test_reads_and_unknown_changes() -> None:
    assert describe("GET", "/v1/apps", {}, {}, {}) is None
    assert describe("POST", "/v1/apps/{app}/logs", {"app": "web"}, {}, {}) is None
    told = describe("POST", "/v1/apps/{app}/new-thing", {"app": "web"}, {}, {})
    assert told is not None and (told.verb, told.app) == ("POST /v1/apps/{app}/new-thing", "web")
    told = describe("POST", "/v1/apps", {}, {}, {"name": "../etc"})
    assert told is not None and (told.verb, told.app) == ("apps:create", "")


# the middleware on a unix socket ------------------------------------------------------------

async def _set_config(request: web.Request) -> web.Response:
    body = await json_body(request)  # the middleware read the body first: still readable
    return web.json_response({"keys": sorted(body["set"])})


async def _destroy(request: web.Request) -> web.Response:
    raise NotFoundError(f"App {request.match_info['app']} does not exist")


async def _push(request: web.Request) -> web.StreamResponse:
    async def work(emit: Any) -> None:
        emit("-----> Building")
        raise ValidationError("build failed: no Procfile")
    await request.read()
    return await stream_lines(request, lines_of(work))


@pytest.fixture
async def api() -> AsyncIterator[tuple[DaemonClient, EventLog]]:
    store = await memory_store()
    events = EventLog(store)
    app = web.Application(middlewares=[errors_middleware, audit_middleware(events)])
    app.router.add_patch("/v1/apps/{app}/config", _set_config)
    app.router.add_delete("/v1/apps/{app}", _destroy)
    app.router.add_post("/v1/apps/{app}/builds", _push)
    add_events_routes(app, events)
    runner = web.AppRunner(app)
    await runner.setup()
    with tempfile.TemporaryDirectory() as tmp:
        sock = str(Path(tmp) / "api.sock")
        await web.UnixSite(runner, sock).start()
        try:
            yield DaemonClient(sock), events
        finally:
            await runner.cleanup()
            await store.close()


async def _all(events: EventLog) -> list[AuditEvent]:
    return (await events.recent(100))[0]


async def test_a_change_by_an_ssh_key(api: tuple[DaemonClient, EventLog],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    client, events = api
    monkeypatch.setenv(ACTOR_ENV, "alice")
    answer = await client.request("PATCH", "/v1/apps/web/config",
                                  json_body={"set": {"TOKEN": "hunter2"}})
    assert answer == {"keys": ["TOKEN"]}
    [event] = await _all(events)
    assert (event.actor, event.via, event.verb, event.app, event.summary, event.outcome) == \
        ("alice", "ssh", "config:set", "web", "set TOKEN", "ok")
    assert "hunter2" not in event.encode().decode()


async def test_a_local_change_that_fails(api: tuple[DaemonClient, EventLog],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    client, events = api
    monkeypatch.delenv(ACTOR_ENV, raising=False)
    with pytest.raises(NotFoundError):
        await client.request("DELETE", "/v1/apps/ghost")
    [event] = await _all(events)
    assert (event.actor, event.via) == (pwd.getpwuid(os.getuid()).pw_name, "local")
    assert (event.verb, event.app, event.outcome, event.error) == \
        ("apps:destroy", "ghost", "failed", "App ghost does not exist")


async def test_a_streamed_failure_is_a_failed_event(api: tuple[DaemonClient, EventLog],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    client, events = api
    monkeypatch.setenv(ACTOR_ENV, "bob")
    lines = []
    with pytest.raises(ValidationError, match="no Procfile"):
        async for line in client.stream("POST", "/v1/apps/web/builds",
                                        params={"rev": "abc1234def5678"}, data=b"tar"):
            lines.append(line)
    assert lines == ["-----> Building"]
    [event] = await _all(events)
    assert (event.actor, event.verb, event.summary, event.outcome, event.error) == \
        ("bob", "push", "revision abc1234def56", "failed", "build failed: no Procfile")


async def test_events_route_lists_and_refuses_bad_input(api: tuple[DaemonClient, EventLog],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    client, events = api
    monkeypatch.setenv(ACTOR_ENV, "carol")
    for app in ("web", "api", "web"):
        await client.request("PATCH", f"/v1/apps/{app}/config", json_body={"set": {"A": "1"}})
    lines = [line async for line in client.stream("GET", "/v1/events",
                                                  params={"n": "5", "app": "web"})]
    assert [AuditEvent.decode(line.encode()).seq for line in lines] == [1, 3]  # type: ignore[union-attr]
    # Reading the trail is not itself a change.
    assert len(await _all(events)) == 3
    with pytest.raises(ValidationError, match="n must be"):
        await client.request("GET", "/v1/events", params={"n": "-1"})
    with pytest.raises(ValidationError):
        await client.request("GET", "/v1/events", params={"app": "../x"})
