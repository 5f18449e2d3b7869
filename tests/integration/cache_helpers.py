"""Helpers for the package cache's integration tests: a cache on loopback in front of a
fake upstream, and short ways to ask it things."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from shipmate import config
from shipmate.cache.server import CacheServer
from shipmate.cache.testing import FakeUpstream

DEFAULT_UPSTREAMS = config.load(environ={}).cache_upstreams
BIG = 24 * 2**20  # a large body: far more than a loopback socket's buffers take at once


@contextlib.asynccontextmanager
async def running_cache(tmp_path: Path, fake: FakeUpstream, **over: Any
                        ) -> AsyncIterator[CacheServer]:
    """A CacheServer on loopback whose allowlist also admits the fake upstream's port."""
    values: dict[str, Any] = {
        "state_dir": tmp_path, "cache_port": 0, "cache_bind": "127.0.0.1",
        "cache_upstreams": DEFAULT_UPSTREAMS + f",{fake.authority}",
        "cache_pypi_upstream": f"http://{fake.authority}/pypi-up",
        "cache_npm_upstream": f"http://{fake.authority}/npm-up",
        "cache_upstream_timeout": 1.0,
    }
    values.update(over)
    server = CacheServer(config.load(environ={}, **values))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def url(cache: CacheServer, path: str) -> str:
    return f"http://127.0.0.1:{cache.port}{path}"


async def get(http: aiohttp.ClientSession, target: str, **kw: Any) -> tuple[int, bytes, Any]:
    async with http.get(target, **kw) as resp:
        return resp.status, await resp.read(), resp.headers


async def attempt(session: aiohttp.ClientSession, target: str
                  ) -> tuple[int | None, bytes | None]:
    """(status, body), or (None, None) when the response broke off."""
    try:
        async with session.get(target) as resp:
            return resp.status, await resp.read()
    except aiohttp.ClientError:
        return None, None


def assert_nothing_cached(cache: CacheServer, tmp_path: Path) -> None:
    data = [p for p in (tmp_path / "cache" / "data").rglob("*") if p.is_file()]
    assert data == [] and cache.storage.entries() == []
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


async def wait_idle(cache: CacheServer) -> None:
    for _ in range(100):
        if not cache.fetcher.downloads:
            return
        await asyncio.sleep(0.05)


class Responses:
    """Reads HTTP/1.1 responses with a Content-Length off a blocking socket, in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending = b""

    def next(self, pause: float = 0.0, head_only: bool = False) -> tuple[bytes, bytes]:
        """Headers and body of the next response; waits ``pause`` s after the headers. The
        answer to a HEAD has no body (``head_only``)."""
        while b"\r\n\r\n" not in self.pending:
            self.pending += self._recv(65536)
        head, _, rest = self.pending.partition(b"\r\n\r\n")
        length = 0 if head_only else int(next(
            line.split(b":")[1] for line in head.split(b"\r\n")
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


def request(target: str, *headers: str, method: str = "GET") -> bytes:
    """A request for the URL ``target``'s path, with ``headers`` ("Name: value")."""
    path = "/" + target.split("/", 3)[3]
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: x", *headers, "", ""]).encode()


def reset(sock: socket.socket) -> None:
    """Make closing ``sock`` with unread data a reset (linger 0), as a client that walks
    away mid-body does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
