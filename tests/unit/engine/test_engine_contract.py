"""The engine contract (:mod:`tests.contract.engine`) on :class:`FakeEngine`: each script is
played through the fake's hooks once the container started."""

from __future__ import annotations

import pytest

from shipmate.testing import FakeEngine
from tests.contract.engine import *  # noqa: F403 - the suite's test functions
from tests.contract.engine import EngineKit, Script

IMAGE = "shipmate/base:bookworm"


@pytest.fixture
def kit() -> EngineKit:
    engine = FakeEngine(images=[IMAGE], health_on_start="starting")

    async def play(cid: str, script: Script) -> None:
        if script.healthy is not None:
            engine.set_health(cid, "healthy" if script.healthy else "unhealthy")
        engine.emit_log(cid, *script.prints)
        if script.exit_code is not None:
            engine.exit(cid, script.exit_code)

    return EngineKit(engine, IMAGE, {"shipmate.contract": "fake"}, lambda _s: ["true"], play)
