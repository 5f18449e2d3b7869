"""Large cache hits sent from worker threads (shipmate.cache.sendbody): right bytes, a slow
client handed back to the event loop without holding a worker, pipelining, disconnects."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from shipmate.cache import sendbody
from shipmate.cache.server import CacheServer
from shipmate.cache.testing import FakeUpstream
from tests.integration.cache_helpers import get, running_cache, url

pytestmark = pytest.mark.integration

BIG = 24 * 2**20  # far more than a loopback socket's buffers take at once


@pytest.fixture
def one_worker() -> Iterator[None]:
    """A sendfile pool of one thread: a client that held its worker would block the next."""
    saved = sendbody.WORKERS, sendbody._pool
    sendbody.WORKERS, sendbody._pool = 1, None
    try:
        yield
    finally:
        if sendbody._pool is not None:
            sendbody._pool.shutdown(wait=True)
        sendbody.WORKERS, sendbody._pool = saved


@pytest.fixture
async def warm(tmp_path: Path, fake: FakeUpstream, http: aiohttp.ClientSession
               ) -> AsyncIterator[tuple[CacheServer, str, bytes]]:
    """A cache holding one large body, already fetched: (server, its URL, the body)."""
    body = os.urandom(BIG)
    path = "/d/pool/large_1.0_amd64.deb"
    fake.files[path] = body
    async with running_cache(tmp_path, fake) as cache:
        target = url(cache, f"/{fake.authority}{path}")
        status, got, _ = await get(http, target)
        assert (status, got == body) == (200, True)
        yield cache, target, body


class Responses:
    """Reads HTTP/1.1 responses with a Content-Length off a blocking socket, in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending = b""

    def next(self, pause: float = 0.0) -> tuple[bytes, bytes]:
        """Headers and body of the next response; waits ``pause`` s after the headers."""
        while b"\r\n\r\n" not in self.pending:
            self.pending += self._recv(65536)
        head, _, rest = self.pending.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        time.sleep(pause)
        parts = [rest]
        got = len(rest)
        while got < length:
            parts.append(self._recv(min(1 << 20, length - got)))
            got += len(parts[-1])
        data = b"".join(parts)
        self.pending = data[length:]
        return head, data[:length]

    def _recv(self, n: int) -> bytes:
        chunk = self.sock.recv(n)
        assert chunk, "the server closed the connection"
        return chunk


def request(target: str) -> bytes:
    path = "/" + target.split("/", 3)[3]
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


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
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        # closed with unread data and linger 0: a reset mid-body

    for _ in range(5):
        await asyncio.to_thread(walk_away)
    status, got, headers = await get(http, target)
    assert (status, got == body, headers["X-Cache"]) == (200, True, "HIT")
    workers = [t for t in threading.enumerate() if t.name.startswith("cache-sendfile")]
    assert len(workers) <= sendbody.WORKERS


def test_send_until_slow_stops_when_the_peer_does_not_read(tmp_path: Path) -> None:
    data = os.urandom(BIG)
    (tmp_path / "f").write_bytes(data)
    server, client = socket.socketpair()
    server.setblocking(False)
    with server, client, open(tmp_path / "f", "rb") as f:
        fd = os.dup(server.fileno())
        file_fd = os.dup(f.fileno())
        start = time.monotonic()
        sent = sendbody.send_until_slow(fd, file_fd, 0, len(data), threading.Event(),
                                        handoff=0.2)
        assert 0 < sent < len(data)  # the buffers filled, then it gave up
        assert time.monotonic() - start < 5
        # the connection is non-blocking again, and the duplicates are closed
        assert not os.get_blocking(server.fileno())
        assert server.getsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, 16) == bytes(16)
        for dup in (fd, file_fd):
            with pytest.raises(OSError):
                os.fstat(dup)
