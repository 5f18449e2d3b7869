"""The router end to end: the store feeds the controller, which drives a real nginx on a free
loopback port, which proxies to real backend HTTP servers."""

from __future__ import annotations

import asyncio
import collections
import json
import shutil
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from shipmate.errors import ValidationError
from shipmate.router import keys
from shipmate.router.controller import RouterController
from shipmate.router.nginx import Nginx
from shipmate.router.render import RenderOptions, render
from shipmate.router.routes import Endpoint, Route, RouterState
from shipmate.store.base import Store
from shipmate.testing.store import memory_store
from tests.conftest import free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed"),
]

TIMEOUT = aiohttp.ClientTimeout(total=5)


class Backend:
    """A tiny HTTP server on loopback that says who it is and echoes headers and websockets."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = 0
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._hello)
        app.router.add_get("/ws", self._ws)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _hello(self, request: web.Request) -> web.Response:
        return web.json_response({"backend": self.name, "headers": dict(request.headers)})

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            await ws.send_str(f"{self.name}:{msg.data}")
        return ws


class Router:
    """A store, a dedicated nginx and a running controller."""

    def __init__(self, store: Store, nginx: Nginx, controller: RouterController) -> None:
        self.store, self.nginx, self.controller = store, nginx, controller
        self.port = nginx.http_port

    async def get(self, host: str, port: int | None = None) -> tuple[int, str]:
        url = f"http://127.0.0.1:{port or self.port}/"
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session, session.get(
            url, headers={"Host": host}
        ) as resp:
            return resp.status, await resp.text()

    async def synced(self, timeout: float = 10.0) -> None:
        """Wait (bounded) until the controller made the store's current revision live."""
        revision = await self.store.revision()

        async def caught_up() -> bool:
            return self.controller.revision >= revision and self.controller.last_error is None

        await eventually(caught_up, timeout)

    async def backends_seen(self, host: str, n: int = 8) -> collections.Counter[str]:
        seen: collections.Counter[str] = collections.Counter()
        for _ in range(n):
            status, text = await self.get(host)
            seen[json.loads(text)["backend"] if status == 200 else str(status)] += 1
        return seen


class LoopbackResolver(AbstractResolver):
    """Resolves every name to 127.0.0.1 (tests only send traffic to loopback)."""

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": 0}]

    async def close(self) -> None:
        pass


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Retry ``check`` until it holds (bounded)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the router did not reach the expected state in time")
        await asyncio.sleep(0.05)


@pytest.fixture
async def backends() -> AsyncIterator[list[Backend]]:
    started = [Backend(name) for name in ("a", "b", "c")]
    for b in started:
        await b.start()
    yield started
    for b in started:
        await b.stop()


@pytest.fixture
async def router(tmp_path: Path) -> AsyncIterator[Router]:
    store = await memory_store()
    nginx = Nginx(tmp_path / "router", http_port=free_port(),
                  options=RenderOptions(bind="127.0.0.1", worker_processes="1"))
    await nginx.start()
    controller = RouterController(store, nginx, interval=0.5, debounce=0.02)
    task = asyncio.create_task(controller.run())
    try:
        yield Router(store, nginx, controller)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await nginx.stop()
        await store.close()


async def add_app(store: Store, app: str, domains: list[str], release: str = "v1",
                  port: int | None = None) -> None:
    await store.put(keys.domains_key(app), keys.encode_domains(domains, port))
    await store.put(keys.active_key(app), keys.encode_active(release))


async def add_endpoint(store: Store, app: str, inst: str, backend: Backend,
                       release: str = "v1") -> None:
    await store.put(keys.endpoint_key(app, "web", inst),
                    keys.encode_endpoint("127.0.0.1", backend.port, release=release))


async def test_round_robin_by_host_and_removal(router: Router, backends: list[Backend]) -> None:
    a, b, _ = backends
    await router.store.put(keys.GLOBAL_DOMAIN_KEY, keys.encode_global_domain("apps.test"))
    await add_app(router.store, "web", ["www.example.test"])
    await add_endpoint(router.store, "web", "1", a)
    await add_endpoint(router.store, "web", "2", b)
    await router.synced()
    assert await router.backends_seen("web.apps.test", 10) == {"a": 5, "b": 5}  # round robin
    assert set(await router.backends_seen("WWW.Example.test:80")) == {"a", "b"}

    _, text = await router.get("web.apps.test")
    headers = json.loads(text)["headers"]
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert headers["X-Forwarded-Proto"] == "http"
    assert headers["Host"] == "web.apps.test"
    assert headers["X-Forwarded-Port"] == str(router.port)

    await router.store.delete(keys.endpoint_key("web", "web", "2"))
    await router.synced()
    assert await router.backends_seen("web.apps.test") == {"a": 8}


async def test_502_page_and_unknown_host(router: Router, backends: list[Backend]) -> None:
    await add_app(router.store, "idle", ["idle.test"])
    await router.synced()
    status, text = await router.get("idle.test")
    assert status == 502
    assert "No live instance of idle is running." in text
    status, text = await router.get("nobody.test")
    assert status == 404
    assert "No app is configured for this host name." in text

    # An endpoint that does not answer (its process just died) gives the same page.
    await router.store.put(keys.endpoint_key("idle", "web", "1"),
                           keys.encode_endpoint("127.0.0.1", free_port(), release="v1"))
    await router.synced()
    assert "upstream shipmate_app_idle" in router.nginx.config_path.read_text()
    status, text = await router.get("idle.test")
    assert status == 502
    assert "No live instance of idle is running." in text


async def test_only_the_active_release_takes_traffic(router: Router,
                                                     backends: list[Backend]) -> None:
    a, b, c = backends
    await add_app(router.store, "web", ["w.test"], release="v1")
    await add_endpoint(router.store, "web", "1", a, "v1")
    await add_endpoint(router.store, "web", "2", b, "v2")
    await add_endpoint(router.store, "web", "3", c, "v2")
    await router.synced()
    assert set(await router.backends_seen("w.test", 6)) == {"a"}
    await router.store.put(keys.active_key("web"), keys.encode_active("v2"))  # the switch
    await router.synced()
    assert set(await router.backends_seen("w.test", 6)) == {"b", "c"}


async def test_dedicated_port_answers_any_host(router: Router, backends: list[Backend]) -> None:
    port = free_port()
    await add_app(router.store, "api", [], port=port)
    await add_endpoint(router.store, "api", "1", backends[0])
    await router.synced()
    status, text = await router.get("whatever.test", port)
    assert status == 200
    assert json.loads(text)["backend"] == "a"
    status, _ = await router.get("api.test")  # not on the HTTP port: no global domain
    assert status == 404


async def test_websocket_upgrade(router: Router, backends: list[Backend]) -> None:
    await add_app(router.store, "chat", ["chat.test"])
    await add_endpoint(router.store, "chat", "1", backends[0])
    await router.synced()
    # aiohttp's websocket client sets Host from the URL, so resolve the name to loopback.
    connector = aiohttp.TCPConnector(resolver=LoopbackResolver())
    async with aiohttp.ClientSession(timeout=TIMEOUT, connector=connector) as session, \
            session.ws_connect(f"http://chat.test:{router.port}/ws") as ws:
        await ws.send_str("hello")
        msg = await ws.receive(timeout=5)
        assert msg.data == "a:hello"


async def test_refused_config_keeps_the_old_one_serving(router: Router,
                                                        backends: list[Backend]) -> None:
    await add_app(router.store, "web", ["w.test"])
    await add_endpoint(router.store, "web", "1", backends[0])
    await router.synced()
    assert set(await router.backends_seen("w.test", 2)) == {"a"}
    good = router.nginx.config_path.read_text()

    # A config that fails `nginx -t`: refused before it goes anywhere near the live one.
    with pytest.raises(ValidationError, match="unknown directive"):
        await router.nginx.apply(good.replace("server_tokens off;", "server_tokenz off;"))
    assert router.nginx.config_path.read_text() == good
    assert "server_tokenz" in router.nginx.config_path.with_name("nginx.conf.rejected").read_text()
    assert set(await router.backends_seen("w.test", 2)) == {"a"}

    # A config that passes `nginx -t` but cannot load (its port is taken): the reload fails,
    # the controller reports it, and the old config keeps serving.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        await add_app(router.store, "api", [], port=port)
        await add_endpoint(router.store, "api", "1", backends[1])

        async def refused() -> bool:
            return isinstance(router.controller.last_error, ValidationError)

        await eventually(refused)
        assert "Address already in use" in str(router.controller.last_error)
        assert router.nginx.config_path.read_text() == good
        assert set(await router.backends_seen("w.test", 2)) == {"a"}
        assert router.nginx.pid is not None
    # Once the port is free, the next periodic pass succeeds.
    await router.synced()
    status, text = await router.get("x.test", port)
    assert (status, json.loads(text)["backend"]) == (200, "b")


async def test_restart_serves_the_last_good_config(tmp_path: Path,
                                                   backends: list[Backend]) -> None:
    port = free_port()
    opts = RenderOptions(bind="127.0.0.1", worker_processes="1")
    state = RouterState(port, (Route("web", ("w.test",), None,
                                     (Endpoint("127.0.0.1", backends[2].port),)),))
    first = Nginx(tmp_path / "r", http_port=port, options=opts)
    await first.start()
    assert await first.apply(render(state, first.render_options)) is True
    assert await first.apply(render(state, first.render_options)) is False  # unchanged
    pid = first.pid
    await first.stop()
    assert first.pid is None and not Path(f"/proc/{pid}").exists()

    second = Nginx(tmp_path / "r", http_port=port, options=opts)
    await second.start()
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session, session.get(
            f"http://127.0.0.1:{port}/", headers={"Host": "w.test"}
        ) as resp:
            assert '"backend": "c"' in await resp.text()
    finally:
        await second.stop()


async def test_rich_config_passes_nginx_test(tmp_path: Path) -> None:
    routes = tuple(
        Route(f"app{i}", (f"app{i}.apps.test", f"www.app{i}.example.test", "x" * 60 + f".a{i}.io"),
              free_port() if i % 3 == 0 else None,
              tuple(Endpoint(h, 30000 + j) for j, h in enumerate(["127.0.0.1", "::1", "10.1.2.3"])))
        for i in range(30)
    )
    nginx = Nginx(tmp_path / "rich", http_port=free_port(),
                  options=RenderOptions(bind="127.0.0.1", worker_processes="1"))
    try:
        # No start(): the first apply() starts nginx.
        # Nothing listens on these endpoints; nginx only has to accept and load the config.
        assert await nginx.apply(render(RouterState(nginx.http_port, routes),
                                        nginx.render_options))
        assert nginx.pid is not None
    finally:
        await nginx.stop()


async def test_a_new_daemon_adopts_the_running_nginx(tmp_path: Path) -> None:
    port = free_port()
    prefix = tmp_path / "adopt"
    # A "daemon" that starts the router's nginx and is then killed without stopping it.
    script = (
        "import asyncio, sys\n"
        "from shipmate.router.nginx import Nginx\n"
        "from shipmate.router.render import RenderOptions\n"
        "async def main():\n"
        f"    n = Nginx({str(prefix)!r}, http_port={port},\n"
        "              options=RenderOptions(bind='127.0.0.1', worker_processes='1'))\n"
        "    await n.start()\n"
        "    print(n.pid, flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    daemon = await asyncio.create_subprocess_exec(sys.executable, "-c", script,
                                                  stdout=asyncio.subprocess.PIPE)
    assert daemon.stdout is not None
    line = await asyncio.wait_for(daemon.stdout.readline(), 20)
    daemon.kill()
    await daemon.wait()
    master = int(line)

    nginx = Nginx(prefix, http_port=port,
                  options=RenderOptions(bind="127.0.0.1", worker_processes="1"))
    await nginx.start()
    try:
        assert nginx.pid == master  # adopted, not started twice
        state = RouterState(port, (Route("web", ("w.test",)),))
        assert await nginx.apply(render(state, nginx.render_options))
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session, session.get(
            f"http://127.0.0.1:{port}/", headers={"Host": "w.test"}
        ) as resp:
            assert resp.status == 502
    finally:
        await nginx.stop()
    assert nginx.pid is None


LONG_DOMAIN = ".".join(["a" * 62, "b" * 62, "c" * 61]) + ".io"  # 190 characters, valid


async def test_a_long_domain_no_longer_freezes_routing(router: Router,
                                                       backends: list[Backend]) -> None:
    # The freeze: a 190-character name made nginx refuse every later config (its
    # server_names_hash did not fit), so another app's deploy switch never went live.
    assert len(LONG_DOMAIN) == 190
    await add_app(router.store, "long", [LONG_DOMAIN])
    await add_endpoint(router.store, "long", "1", backends[0])
    await add_app(router.store, "other", ["o.test"])
    await add_endpoint(router.store, "other", "1", backends[1])
    await router.synced()
    assert set(await router.backends_seen(LONG_DOMAIN, 2)) == {"a"}
    assert set(await router.backends_seen("o.test", 2)) == {"b"}
    # the other app's switch to a new release goes live
    await add_endpoint(router.store, "other", "2", backends[2], release="v2")
    await router.store.put(keys.active_key("other"), keys.encode_active("v2"))
    await router.synced()
    assert set(await router.backends_seen("o.test", 4)) == {"c"}
    assert router.controller.excluded == {}


async def test_an_app_nginx_refuses_is_left_out_and_reported(tmp_path: Path,
                                                             backends: list[Backend]) -> None:
    # A bucket size forced too small stands for any name nginx refuses: only the app that
    # has it is left out, and every other app keeps being routed and switched.
    store = await memory_store()
    nginx = Nginx(tmp_path / "router", http_port=free_port(),
                  options=RenderOptions(bind="127.0.0.1", worker_processes="1",
                                        names_hash_bucket_size=64))
    await nginx.start()
    controller = RouterController(store, nginx, interval=0.5, debounce=0.02)
    task = asyncio.create_task(controller.run())
    router = Router(store, nginx, controller)
    try:
        await add_app(store, "other", ["o.test"])
        await add_endpoint(store, "other", "1", backends[1])
        await router.synced()
        await add_app(store, "long", [LONG_DOMAIN])
        await add_endpoint(store, "long", "1", backends[0])
        await add_endpoint(store, "other", "2", backends[2], release="v2")
        await store.put(keys.active_key("other"), keys.encode_active("v2"))
        await router.synced()
        assert set(await router.backends_seen("o.test", 4)) == {"c"}
        assert list(controller.excluded) == ["long"]
        assert "server_names_hash" in controller.excluded["long"]
        assert (await router.get(LONG_DOMAIN))[0] == 404  # left out: the default server
        # Its name removed, the app is routed again.
        await store.put(keys.domains_key("long"), keys.encode_domains(["l.test"]))
        await router.synced()
        assert set(await router.backends_seen("l.test", 2)) == {"a"}
        assert controller.excluded == {}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await nginx.stop()
        await store.close()
