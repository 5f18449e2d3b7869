"""Fixtures for the integration tests (a file may define its own ``engine`` instead)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shipmate.engine.docker import DockerEngine
from tests.integration.engine_helpers import RUN_ID, TEST_LABEL


@pytest.fixture
async def engine(docker_host: str) -> AsyncIterator[DockerEngine]:
    """The real engine; containers labelled ``TEST_LABEL=RUN_ID`` are removed afterwards."""
    eng = DockerEngine(docker_host)
    yield eng
    for c in await eng.list({TEST_LABEL: RUN_ID}):
        await eng.remove(c.id, force=True)
    await eng.close()
