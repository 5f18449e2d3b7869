"""Streams end with an error line even when the work has a bug, so clients never hang."""

import json
import tempfile
from pathlib import Path

import aiohttp
from aiohttp import web

from shipmate.errors import ValidationError
from shipmate.httpapi.server import lines_of, stream_lines


async def _serve(work) -> list[str]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await stream_lines(request, lines_of(work))

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    # A unix socket, as the daemon serves its API: no TCP port in unit tests.
    with tempfile.TemporaryDirectory() as tmp:
        sock = str(Path(tmp) / "api.sock")
        await web.UnixSite(runner, sock).start()
        try:
            async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(sock)) as client, \
                    client.get("http://shipmate/") as resp:
                return (await resp.text()).splitlines()
        finally:
            await runner.cleanup()


async def test_lines_then_shipmate_error() -> None:
    async def work(emit) -> None:
        emit("-----> one")
        raise ValidationError("bad", hint="fix it")

    lines = await _serve(work)
    assert lines[0] == "-----> one"
    assert json.loads(lines[1])["error"] == {"code": "invalid", "message": "bad",
                                             "hint": "fix it"}


async def test_a_bug_still_ends_the_stream_with_an_error() -> None:
    async def work(emit) -> None:
        emit("-----> one")
        raise TypeError("boom")

    lines = await _serve(work)
    assert lines[0] == "-----> one"
    err = json.loads(lines[1])["error"]
    assert "TypeError: boom" in err["message"]
