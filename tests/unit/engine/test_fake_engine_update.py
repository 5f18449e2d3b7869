"""FakeEngine.rename and FakeEngine.update: recorded writes, conflicts, what inspect shows."""

from __future__ import annotations

import pytest

from shipmate.errors import EngineConflictError, EngineError, NotFoundError
from shipmate.spec.container import make_spec
from shipmate.testing.engine import FakeEngine, Write

BASE = "shipmate/base:bookworm"


async def test_rename_moves_the_name_and_records_the_write() -> None:
    engine = FakeEngine(images=[BASE])
    cid = await engine.create(make_spec("web-tmp", BASE))
    await engine.rename(cid, "web")
    info = await engine.inspect("web")
    assert info is not None and info.id == cid and info.name == "web"
    assert await engine.inspect("web-tmp") is None
    assert engine.writes[-1] == Write("rename", "web")
    assert engine.emitted[-1].action == "rename"


async def test_rename_to_a_taken_name_is_a_conflict() -> None:
    engine = FakeEngine(images=[BASE])
    a = await engine.create(make_spec("aa", BASE))
    await engine.create(make_spec("bb", BASE))
    with pytest.raises(EngineConflictError):
        await engine.rename(a, "bb")
    await engine.rename(a, "aa")  # its own name is fine
    with pytest.raises(NotFoundError):
        await engine.rename("missing", "cc")


async def test_update_sets_the_restart_policy_shown_by_inspect() -> None:
    engine = FakeEngine(images=[BASE])
    cid = await engine.create(make_spec("web", BASE, restart="no"))
    info = await engine.inspect(cid)
    assert info is not None and info.raw["HostConfig"]["RestartPolicy"]["Name"] == "no"
    await engine.update(cid, restart="on-failure")
    info = await engine.inspect(cid)
    assert info is not None and info.raw["HostConfig"]["RestartPolicy"]["Name"] == "on-failure"
    assert info.id == cid and engine.writes[-1] == Write("update", "web")
    with pytest.raises(EngineError):
        await engine.update(cid, restart="sometimes")
