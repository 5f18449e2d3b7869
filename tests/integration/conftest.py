"""Fixtures for the integration tests (a file may define its own ``engine`` or ``cache``
instead)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from shipmate.cache.server import CacheServer
from shipmate.cache.testing import FakeUpstream
from shipmate.engine.docker import DockerEngine
from tests.integration.cache_helpers import BIG, get, running_cache, url
from tests.integration.engine_helpers import RUN_ID, TEST_LABEL


@pytest.fixture
async def engine(docker_host: str) -> AsyncIterator[DockerEngine]:
    """The real engine; containers labelled ``TEST_LABEL=RUN_ID`` are removed afterwards."""
    eng = DockerEngine(docker_host)
    yield eng
    for c in await eng.list({TEST_LABEL: RUN_ID}):
        await eng.remove(c.id, force=True)
    await eng.close()


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    up = FakeUpstream()
    await up.start()
    yield up
    await up.stop()


@pytest.fixture
async def cache(tmp_path: Path, fake: FakeUpstream) -> AsyncIterator[CacheServer]:
    async with running_cache(tmp_path, fake) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


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
