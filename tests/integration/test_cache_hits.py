"""Large cache hits sent with sendfile (shipmate.cache.hits): right bytes, a slow client that
holds nobody else up, pipelining, disconnects."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time

import aiohttp
import pytest

from shipmate.cache.server import CacheServer
from shipmate.cache.testing import FakeUpstream
from tests.integration.cache_helpers import Responses, get, request, reset, url

pytestmark = pytest.mark.integration


async def test_hits_of_large_bodies_are_whole_and_counted(
        warm: tuple[CacheServer, str, bytes]) -> None:
    cache, target, body = warm
    before = cache.snapshot()["formats"]["apt"]["bytes_from_cache"]
    conn = aiohttp.TCPConnector(limit=20)
    async with aiohttp.ClientSession(connector=conn) as many:
        async def one() -> str:
            async with many.get(target) as resp:
                assert resp.headers["X-Cache"] == "HIT"
                return hashlib.sha256(await resp.read()).hexdigest()
        digests = await asyncio.gather(*(one() for _ in range(10)))
    assert set(digests) == {hashlib.sha256(body).hexdigest()}
    assert cache.snapshot()["formats"]["apt"]["bytes_from_cache"] - before == 10 * len(body)


async def test_a_slow_client_holds_nobody_else_up(
        warm: tuple[CacheServer, str, bytes]) -> None:
    cache, target, body = warm
    port = cache.port

    def slow_then_fast() -> tuple[bytes, bytes]:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            sock.sendall(request(target))
            return Responses(sock).next(pause=3.0)  # reads nothing for 3 s

    def quick() -> tuple[float, bytes]:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            start = time.monotonic()
            sock.sendall(request(target))
            _, got = Responses(sock).next()
            return time.monotonic() - start, got

    slow = asyncio.create_task(asyncio.to_thread(slow_then_fast))
    await asyncio.sleep(0.5)  # the slow client has stalled its body's sending by now
    took, got = await asyncio.to_thread(quick)
    assert got == body
    assert took < 2.5, f"the second client waited {took:.1f} s behind a stalled one"
    _, slow_body = await slow
    assert slow_body == body


async def test_pipelined_large_hits_answered_in_order(
        warm: tuple[CacheServer, str, bytes], fake: FakeUpstream,
        http: aiohttp.ClientSession) -> None:
    cache, target, body = warm
    small_path = "/d/pool/small_1.0_all.deb"
    fake.files[small_path] = b"s" * 5000
    small = url(cache, f"/{fake.authority}{small_path}")
    await get(http, small)

    def pipelined() -> list[bytes]:
        with socket.create_connection(("127.0.0.1", cache.port), timeout=20) as sock:
            sock.sendall(request(target) + request(small) + request(target))
            responses = Responses(sock)
            return [responses.next()[1] for _ in range(3)]

    assert await asyncio.to_thread(pipelined) == [body, b"s" * 5000, body]


async def test_client_gone_mid_body_leaves_the_server_serving(
        warm: tuple[CacheServer, str, bytes], http: aiohttp.ClientSession) -> None:
    cache, target, body = warm

    def walk_away() -> None:
        with socket.create_connection(("127.0.0.1", cache.port), timeout=20) as sock:
            sock.sendall(request(target))
            sock.recv(100_000)
            reset(sock)

    for _ in range(5):
        await asyncio.to_thread(walk_away)
    status, got, headers = await get(http, target)
    assert (status, got == body, headers["X-Cache"]) == (200, True, "HIT")
