"""A dashboard on a unix socket over the in-memory store, and a browser-like client of it
(cookies kept, the login form's token read), for the dashboard's unit tests."""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from shipmate import config
from shipmate.paas.model import Release
from shipmate.paas.service import Paas
from shipmate.store.base import Store
from shipmate.testing.store import memory_store
from shipmate.web.dashboard.server import Dashboard, make_app
from shipmate.web.eventlog import EventLog
from shipmate.web.users import Users

PASSWORD = "correct horse battery"
BASE = "http://dash.test"


@dataclass
class Running:
    """A dashboard under test: its store, its parts and its socket."""

    store: Store
    dash: Dashboard
    socket: str

    def client(self) -> aiohttp.ClientSession:
        """A fresh browser (its own cookies)."""
        return aiohttp.ClientSession(BASE, connector=aiohttp.UnixConnector(path=self.socket),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True))


async def seed(store: Store, paas: Paas, apps: tuple[str, ...] = ("web", "other")) -> None:
    """Apps with a release each, and users: root (admin) and alice (granted ``web``)."""
    for name in apps:
        await paas.state.create_app(name)
        await paas.state.put_release(name, Release(1, "sha256:0", {"SECRET": "hunter2"},
                                                   {}, {"web": ""}, "abc1234", 1.0, "Deploy"))
        await paas.state.set_current(name, 1)
        await paas.state.update_config(name, {"SECRET": "hunter2"})
    await store.put("/shipmate/acl/web", '{"names": ["alice"]}')


@contextlib.asynccontextmanager
async def running_dashboard(tmp: Path) -> AsyncIterator[Running]:
    """A seeded dashboard serving on a unix socket under ``tmp``."""
    store = await memory_store()
    paas = Paas(store, None, config.load({}, state_dir=tmp))
    users = Users(store, log2_n=10)
    await users.add("root", PASSWORD, admin=True)
    await users.add("alice", PASSWORD)
    await seed(store, paas)
    dash = Dashboard(store, paas, users, EventLog(store))
    runner = web.AppRunner(make_app(dash))
    await runner.setup()
    with tempfile.TemporaryDirectory() as sockdir:
        sock = str(Path(sockdir) / "dash.sock")
        await web.UnixSite(runner, sock).start()
        try:
            yield Running(store, dash, sock)
        finally:
            await runner.cleanup()
            await store.close()


def form_token(page: str) -> str:
    """The hidden ``csrf`` field of a page."""
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


async def log_in(client: aiohttp.ClientSession, user: str, password: str = PASSWORD,
                 **headers: str) -> aiohttp.ClientResponse:
    """The login form, then its POST (not following the redirect)."""
    async with client.get("/login") as resp:
        token = form_token(await resp.text())
    data: dict[str, Any] = {"user": user, "password": password, "csrf": token, "next": "/"}
    async with client.post("/login", data=data, allow_redirects=False,
                           headers=headers) as resp:
        await resp.read()
        return resp
