"""Streams end with an error line even when the work has a bug, so clients never hang."""

import json

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shipmate.errors import ValidationError
from shipmate.httpapi.server import lines_of, stream_lines


async def _serve(work) -> list[str]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await stream_lines(request, lines_of(work))

    app = web.Application()
    app.router.add_get("/", handler)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/")
        return (await resp.text()).splitlines()


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
