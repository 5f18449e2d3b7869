"""Names shared by the engine tests: containers they create carry ``TEST_LABEL=RUN_ID`` and
are removed by the ``engine`` fixture in tests/integration/conftest.py."""

from __future__ import annotations

import uuid

TEST_LABEL = "shipmate.test-run"
RUN_ID = uuid.uuid4().hex[:10]


def name(prefix: str) -> str:
    """A unique container name for a test."""
    return f"sm-test-{prefix}-{uuid.uuid4().hex[:8]}"


def remove_machine_containers(docker_host: str, machine: str) -> None:
    """Remove every container a test daemon with machine ID ``machine`` left behind."""
    import asyncio

    from shipmate.agent.containers import MACHINE_LABEL
    from shipmate.engine.docker import DockerEngine

    async def remove() -> None:
        engine = DockerEngine(docker_host)
        try:
            for c in await engine.list({MACHINE_LABEL: machine}):
                await engine.remove(c.id, force=True)
        finally:
            await engine.close()

    asyncio.run(remove())
