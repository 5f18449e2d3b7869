"""Helpers for the package cache's integration tests: a cache on loopback in front of a
fake upstream, and short ways to ask it things."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from shipmate import config
from shipmate.cache.server import CacheServer
from shipmate.cache.testing import FakeUpstream

DEFAULT_UPSTREAMS = config.load(environ={}).cache_upstreams


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
