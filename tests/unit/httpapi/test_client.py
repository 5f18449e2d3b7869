"""The CLI's small client against a real aiohttp server on a unix socket: JSON answers, the
daemon's errors rebuilt, streamed lines (chunked), and a daemon that is not there."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from shipmate.errors import DaemonUnavailableError, NotFoundError, ShipmateError
from shipmate.httpapi.client import DaemonClient
from shipmate.httpapi.server import errors_middleware, json_body, lines_of, stream_lines


async def _echo(request: web.Request) -> web.Response:
    body = await json_body(request) if request.can_read_body else None
    return web.json_response({"method": request.method, "path": request.path,
                              "query": dict(request.query), "body": body})


async def _missing(request: web.Request) -> web.Response:
    raise NotFoundError("no app nope", hint="apps:list shows the apps")


async def _broken(request: web.Request) -> web.Response:
    return web.Response(status=502, text="<html>bad gateway</html>")


async def _upload(request: web.Request) -> web.StreamResponse:
    size = len(await request.read())

    async def work(emit) -> None:
        for i in range(3):
            emit(f"-----> step {i} of {size} bytes")
            await asyncio.sleep(0)
        if request.query.get("fail"):
            raise ShipmateError("build failed", hint="see above")

    return await stream_lines(request, lines_of(work))


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(5)
    return web.json_response({})


@pytest.fixture
async def socket_path(tmp_path: Path) -> AsyncIterator[Path]:
    app = web.Application(middlewares=[errors_middleware])
    app.router.add_route("*", "/echo/{rest:.*}", _echo)
    app.router.add_get("/missing", _missing)
    app.router.add_get("/broken", _broken)
    app.router.add_post("/upload", _upload)
    app.router.add_get("/slow", _slow)
    runner = web.AppRunner(app)
    await runner.setup()
    path = tmp_path / "d.sock"
    await web.UnixSite(runner, str(path)).start()
    yield path
    await runner.cleanup()


async def test_json_request_and_answer(socket_path: Path) -> None:
    client = DaemonClient(socket_path)
    got = await client.request("POST", "/echo/a b", json_body={"name": "web"},
                               params={"unit": "x@1.service", "n": "2"})
    assert got == {"method": "POST", "path": "/echo/a b", "body": {"name": "web"},
                   "query": {"unit": "x@1.service", "n": "2"}}
    assert (await client.request("GET", "/echo/"))["body"] is None


async def test_the_daemons_error_comes_back_as_its_exception(socket_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no app nope") as err:
        await DaemonClient(socket_path).request("GET", "/missing")
    assert err.value.hint == "apps:list shows the apps"
    with pytest.raises(ShipmateError, match="daemon answered HTTP 502"):
        await DaemonClient(socket_path).request("GET", "/broken")


async def test_streamed_lines_then_the_error_line_raises(socket_path: Path) -> None:
    client = DaemonClient(socket_path)
    lines = [line async for line in client.stream("POST", "/upload", data=b"x" * 70_000)]
    assert lines == [f"-----> step {i} of 70000 bytes" for i in range(3)]
    seen = []
    with pytest.raises(ShipmateError, match="build failed"):
        async for line in client.stream("POST", "/upload", params={"fail": "1"}):
            seen.append(line)
    assert len(seen) == 3
    with pytest.raises(NotFoundError):
        async for _ in client.stream("GET", "/missing"):
            pass


async def test_no_daemon_says_so(tmp_path: Path) -> None:
    with pytest.raises(DaemonUnavailableError, match="no Shipmate daemon answers at") as err:
        await DaemonClient(tmp_path / "none.sock").request("GET", "/v1/status")
    assert "shipmate up" in (err.value.hint or "")
    with pytest.raises(DaemonUnavailableError):
        async for _ in DaemonClient(tmp_path / "none.sock").stream("GET", "/v1/status"):
            pass


async def test_a_slow_daemon_times_out(socket_path: Path) -> None:
    with pytest.raises(DaemonUnavailableError, match=r"did not answer GET /slow within 0\.2s"):
        await DaemonClient(socket_path).request("GET", "/slow", timeout=0.2)
