"""Large cache hits sent from worker threads (shipmate.cache.sendbody): right bytes, a slow
client handed back to the event loop without holding a worker, pipelining, disconnects."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
import time
from pathlib import Path

import aiohttp
import pytest

from shipmate.cache import sendbody
from shipmate.cache.server import CacheServer
from shipmate.cache.testing import FakeUpstream
from tests.integration.cache_helpers import BIG, Responses, get, request, reset, url

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


async def test_slow_client_is_handed_back_and_does_not_hold_the_worker(
        one_worker: None, warm: tuple[CacheServer, str, bytes]) -> None:
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
    await asyncio.sleep(0.5)  # the slow client has stalled its only worker's send by now
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
    workers = [t for t in threading.enumerate() if t.name.startswith("cache-sendfile")]
    assert len(workers) <= sendbody.WORKERS


def test_an_impatient_send_stops_when_the_peer_does_not_read(tmp_path: Path) -> None:
    data = os.urandom(BIG)
    (tmp_path / "f").write_bytes(data)
    server, client = socket.socketpair()
    server.setblocking(False)
    with server, client, open(tmp_path / "f", "rb") as f:
        fd = os.dup(server.fileno())
        file_fd = os.dup(f.fileno())
        start = time.monotonic()
        sent = sendbody.send_and_follow(fd, file_fd, 0, len(data), threading.Event(),
                                        handoff=0.2, lookup=None, report=lambda _: None,
                                        patient=False).first
        assert 0 < sent < len(data)  # the buffers filled, then it gave up
        assert time.monotonic() - start < 5
        # the connection is non-blocking again, and the duplicates are closed
        assert not os.get_blocking(server.fileno())
        assert server.getsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, 16) == bytes(16)
        for dup in (fd, file_fd):
            with pytest.raises(OSError):
                os.fstat(dup)


def test_a_body_goes_in_full_segments_and_its_end_at_once(tmp_path: Path) -> None:
    """Nagle's algorithm is on while the worker sends (TCP_NODELAY would send a partial
    segment on every ACK); TCP_NODELAY is back on after, which pushes the last bytes out."""
    data = os.urandom(BIG + 1234)
    (tmp_path / "f").write_bytes(data)
    with socket.create_server(("127.0.0.1", 0)) as listener, \
            socket.create_connection(listener.getsockname()) as client, \
            open(tmp_path / "f", "rb") as f:
        server, _ = listener.accept()
        with server:
            server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            server.setblocking(False)
            worker = threading.Thread(target=sendbody.send_and_follow, args=(
                os.dup(server.fileno()), os.dup(f.fileno()), 0, len(data), threading.Event(),
                5.0, None, lambda _: None))
            worker.start()
            time.sleep(0.5)  # the client reads nothing: the worker waits in sendfile
            assert worker.is_alive()
            assert server.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
            got = bytearray()
            while len(got) < len(data):
                got += client.recv(1 << 20)
            worker.join(10)
            assert bytes(got) == data
            assert server.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
