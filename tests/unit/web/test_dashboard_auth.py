"""The dashboard keeps out whoever has no session, on every route of its table, and every
POST without the session's CSRF token or from another site; logins are rate-limited and
audited; a non-admin user sees only the apps granted to them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shipmate.web.dashboard.routes import ROUTES
from tests.unit.web.dashboard_helpers import (
    PASSWORD,
    Running,
    form_token,
    log_in,
    running_dashboard,
)

SAMPLE = {"app": "web", "unit": "web_web.1_v1-abcd.container", "name": "dash.css"}


@pytest.fixture
async def dash(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_dashboard(tmp_path) as running:
        yield running


def _path(template: str) -> str:
    for key, value in SAMPLE.items():
        template = template.replace("{" + key + "}", value)
    return template


async def test_every_route_refuses_a_request_without_a_session(dash: Running) -> None:
    guarded = [r for r in ROUTES if r.kind != "public"]
    assert {r.kind for r in guarded} == {"page", "fragment", "live", "action"}
    async with dash.client() as client:
        for route in guarded:
            async with client.request(route.method, _path(route.path), allow_redirects=False,
                                      data={"csrf": "x"}) as resp:
                if route.kind == "page":
                    assert resp.status == 303, route
                    assert resp.headers["Location"].startswith("/login?next=%2F"), route
                else:
                    assert resp.status == 401, route
                body = await resp.text()
                assert "hunter2" not in body and "web" not in body.replace("/login", "")
        async with client.get("/no/such/page", allow_redirects=False) as resp:
            assert resp.status == 401
        async with client.get("/static/htmx.min.js") as resp:
            assert resp.status == 200 and "htmx" in await resp.text()
        async with client.get("/static/..%2Fserver.py") as resp:
            assert resp.status == 404


async def test_login_sets_a_strict_httponly_cookie_and_is_audited(dash: Running) -> None:
    async with dash.client() as client:
        resp = await log_in(client, "root")
        assert resp.status == 303 and resp.headers["Location"] == "/"
        cookie = resp.headers.getall("Set-Cookie")
        session = next(c for c in cookie if c.startswith("shipmate_session="))
        assert "HttpOnly" in session and "SameSite=Strict" in session
        assert "Path=/" in session and "Secure" not in session  # plain HTTP here
        async with client.get("/") as page:
            text = await page.text()
            assert page.status == 200 and 'href="/apps/web"' in text and "other" in text
            assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    async with dash.client() as client:  # behind the router over HTTPS: Secure
        resp = await log_in(client, "root", **{"X-Forwarded-Proto": "https",
                                               "Origin": "https://dash.test"})
        assert resp.status == 303
        assert "Secure" in next(c for c in resp.headers.getall("Set-Cookie")
                                if c.startswith("shipmate_session="))
    events = [(e.actor, e.via, e.verb, e.outcome) for e in (await dash.dash.events.recent(9))[0]]
    assert events == [("root", "dashboard", "login", "ok")] * 2


async def test_failed_logins_are_rate_limited(dash: Running) -> None:
    async with dash.client() as client:
        for _ in range(5):
            assert (await log_in(client, "alice", "wrong password!")).status == 401
        # the sixth attempt is refused before the password is checked, right one or not
        assert (await log_in(client, "alice")).status == 429
        assert (await log_in(client, "root", "wrong password!")).status == 429  # same address
    failed = [e for e in (await dash.dash.events.recent(20))[0] if e.outcome == "failed"]
    assert len(failed) == 5 and {e.actor for e in failed} == {"alice"}


async def test_the_login_form_needs_its_own_token(dash: Running) -> None:
    async with dash.client() as client, client.post(
            "/login", data={"user": "root", "password": PASSWORD, "csrf": "forged"},
            allow_redirects=False) as resp:
        assert resp.status == 403
        assert "shipmate_session" not in resp.cookies


async def test_a_forged_post_is_refused(dash: Running) -> None:
    async with dash.client() as client:
        await log_in(client, "root")
        async with client.get("/apps/web") as resp:
            token = form_token(await resp.text())
        async with client.post("/apps/web/lock", data={}) as resp:
            assert resp.status == 403 and "CSRF" in await resp.text()
        async with client.post("/apps/web/lock", data={"csrf": token[:-1] + "x"}) as resp:
            assert resp.status == 403
        async with client.post("/apps/web/lock", data={"csrf": token},
                               headers={"Origin": "https://evil.example"}) as resp:
            assert resp.status == 403 and "another site" in await resp.text()
        assert not (await dash.dash.paas.state.get_app("web")).locked
        async with client.post("/apps/web/lock", data={"csrf": token},
                               headers={"Origin": "http://dash.test"},
                               allow_redirects=False) as resp:
            assert resp.status == 303
        async with client.post("/apps/web/unlock", headers={"X-CSRF-Token": token,
                                                            "HX-Request": "true"}) as resp:
            assert resp.status == 200 and "unlocked" in await resp.text()
    assert not (await dash.dash.paas.state.get_app("web")).locked
    trail = [(e.actor, e.via, e.verb, e.app) for e in (await dash.dash.events.recent(9))[0]]
    assert trail[-2:] == [("root", "dashboard", "apps:lock", "web"),
                          ("root", "dashboard", "apps:unlock", "web")]


async def test_a_user_sees_only_the_apps_granted_to_them(dash: Running) -> None:
    async with dash.client() as client:
        await log_in(client, "alice")
        async with client.get("/") as resp:
            text = await resp.text()
            assert 'href="/apps/web"' in text and 'href="/apps/other"' not in text
        async with client.get("/apps/other") as resp:
            assert resp.status == 404
        async with client.get("/apps/web") as resp:
            text = await resp.text()
            assert resp.status == 200 and "SECRET" in text and "hunter2" not in text
            token = form_token(text)
        async with client.post("/apps/other/lock", data={"csrf": token}) as resp:
            assert resp.status == 404
    assert not (await dash.dash.paas.state.get_app("other")).locked


async def test_logout_ends_the_session_and_a_removed_user_is_out(dash: Running) -> None:
    async with dash.client() as client:
        await log_in(client, "alice")
        async with client.get("/", allow_redirects=False) as resp:
            token = form_token(await resp.text())
        async with client.post("/logout", data={"csrf": token}, allow_redirects=False) as resp:
            assert resp.status == 303
        async with client.get("/", allow_redirects=False) as resp:
            assert resp.status == 303
        await log_in(client, "alice")
        await dash.dash.users.remove("alice")
        async with client.get("/", allow_redirects=False) as resp:
            assert resp.status == 303
