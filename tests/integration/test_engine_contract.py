"""The engine contract (:mod:`tests.contract.engine`) on the real dockerd: each script is a
shell command run in shipmate/base:bookworm."""

from __future__ import annotations

import shlex
import uuid

import pytest

from shipmate.engine.docker import DockerEngine
from tests.contract.engine import *  # noqa: F403 - the suite's test functions
from tests.contract.engine import EngineKit, Script
from tests.integration.engine_helpers import RUN_ID, TEST_LABEL

pytestmark = pytest.mark.integration


def command(script: Script) -> list[str]:
    """``sh -c`` printing the lines, then exiting or staying up (stopping at once on TERM)."""
    prints = "; ".join(f"echo {shlex.quote(line)}" for line in script.prints)
    end = (f"exit {script.exit_code}" if script.exit_code is not None
           else "trap 'exit 0' TERM; while :; do sleep 0.1; done")
    return ["sh", "-c", f"{prints}; {end}" if prints else end]


async def nothing_to_play(cid: str, script: Script) -> None:
    """The container's own command carries the script out."""


@pytest.fixture
def kit(engine: DockerEngine, base_image: str) -> EngineKit:
    """dockerd, with labels unique to the test (the ``engine`` fixture removes the run's
    containers afterwards)."""
    labels = {TEST_LABEL: RUN_ID, "shipmate.contract": uuid.uuid4().hex[:10]}
    return EngineKit(engine, base_image, labels, command, nothing_to_play)
