"""Fixtures for the integration tests (a file may define its own ``engine`` or ``cache``
instead)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from shipmate.cache.server import CacheServer
from shipmate.cache.testing import FakeUpstream
from shipmate.engine.docker import DockerEngine
from tests.integration.cache_helpers import running_cache
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
