"""The cache's edges against clients that hold connections: a request's headers must arrive
within ``cache_header_timeout`` (slowloris), and one client address may hold at most
``cache_client_connections`` connections (real sockets on loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipmate.cache.testing import FakeUpstream
from tests.integration.cache_helpers import Responses, running_cache

pytestmark = pytest.mark.integration

STATS = "/_shipmate/cache/stats.json"


def ask(sock: socket.socket, path: str = STATS) -> bytes:
    """Send a GET for ``path`` and return the response's head."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head, _ = Responses(sock).next()
    return head


def closed_after(sock: socket.socket, trickle: bytes, every: float, limit: float) -> float:
    """Send ``trickle`` every ``every`` seconds (b"": nothing) until the server closes the
    connection; the seconds that took. Fails after ``limit`` seconds."""
    start = time.monotonic()
    sock.settimeout(every)
    while time.monotonic() - start < limit:
        try:
            if trickle:
                sock.sendall(trickle)
            if sock.recv(4096) == b"":
                return time.monotonic() - start
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start
    raise AssertionError(f"the connection was still open after {limit} s")


@contextlib.contextmanager
def connected(port: int, source: str = "127.0.0.1") -> Iterator[socket.socket]:
    with socket.create_connection(("127.0.0.1", port), timeout=10,
                                  source_address=(source, 0)) as sock:
        yield sock


async def test_a_request_whose_headers_never_end_is_closed(tmp_path: Path,
                                                           fake: FakeUpstream) -> None:
    async with running_cache(tmp_path, fake, cache_header_timeout=1.0) as cache:
        def slowloris() -> tuple[float, float, bytes]:
            with connected(cache.port) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
                trickling = closed_after(sock, b"X-a: b\r\n", 0.2, 10)
            with connected(cache.port) as sock:
                silent = closed_after(sock, b"", 0.2, 10)
            with connected(cache.port) as sock:  # a client that asks in time is served
                head = ask(sock)
                time.sleep(0.5)
                head += ask(sock)  # and may ask again on the same connection
            return trickling, silent, head

        trickling, silent, head = await asyncio.to_thread(slowloris)
    assert 0.9 < trickling < 3 and 0.9 < silent < 3
    assert head.count(b"HTTP/1.1 200") == 2


async def test_an_idle_keep_alive_connection_is_closed(tmp_path: Path,
                                                       fake: FakeUpstream) -> None:
    async with running_cache(tmp_path, fake, cache_header_timeout=1.0) as cache:
        def idle() -> float:
            with connected(cache.port) as sock:
                assert ask(sock).startswith(b"HTTP/1.1 200")
                sock.sendall(b"GET / HTTP/1.1\r\n")  # the next request's headers never end
                return closed_after(sock, b"", 0.2, 10)

        assert 0.9 < await asyncio.to_thread(idle) < 3


async def test_connections_beyond_the_per_client_cap_are_answered_503(
        tmp_path: Path, fake: FakeUpstream) -> None:
    async with running_cache(tmp_path, fake, cache_client_connections=3) as cache:
        def crowd() -> list[bytes]:
            heads = []
            with contextlib.ExitStack() as stack:
                held = [stack.enter_context(connected(cache.port)) for _ in range(3)]
                heads += [ask(sock) for sock in held]
                with connected(cache.port) as fourth:
                    heads.append(ask(fourth))
                    assert fourth.recv(1) == b""  # and closed
                with connected(cache.port, source="127.0.0.2") as other:  # another client
                    heads.append(ask(other))
                held[0].close()
                time.sleep(0.2)  # the server sees it closed
                with connected(cache.port) as again:
                    heads.append(ask(again))
            return heads

        heads = await asyncio.to_thread(crowd)
        status = [h.split(b"\r\n")[0].decode() for h in heads]
        assert status == ["HTTP/1.1 200 OK"] * 3 + ["HTTP/1.1 503 Service Unavailable"] + [
            "HTTP/1.1 200 OK"] * 2
        assert b"Connection: close" in heads[3]
        assert cache.snapshot()["over_cap"] == 1
