"""In-place restart-policy updates and replaced containers taking their name back, through
the FakeEngine."""

from __future__ import annotations

import pytest

from shipmate.cli.manifest import render_plan
from shipmate.converge.apply import apply_manifest, plan_manifest
from shipmate.testing.engine import FakeEngine
from tests.unit.converge.helpers import STACK, AutoClock, manifest

WITH_RESTART = STACK.replace("env: {QUEUE: jobs}", "env: {QUEUE: jobs}\n        restart: always")


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(images=["shipmate/base:bookworm", "example/api:1"])


async def converge(engine: FakeEngine, text: str) -> None:
    result = await apply_manifest(engine, manifest(text), clock=AutoClock())
    assert result.ok, [o.message for o in result.failures]


def by_name(engine: FakeEngine) -> dict[str, str]:
    return {c.spec.name: c.id for c in engine.containers.values()}


async def test_restart_only_change_is_planned_as_update_in_place(engine: FakeEngine) -> None:
    await converge(engine, STACK)
    plan = await plan_manifest(engine, manifest(WITH_RESTART))
    changing = [a for a in plan.actions if a.changes_anything]
    assert [(a.name, a.kind) for a in changing] == [("worker", "update")]
    assert [c.field for c in changing[0].changes] == ["restart"]
    text = "\n".join(t for _, t in render_plan(plan))
    assert "update in place worker" in text and 'restart: "no" -> "always"  (in place)' in text


async def test_restart_update_keeps_the_container_and_settles(engine: FakeEngine) -> None:
    await converge(engine, STACK)
    before = by_name(engine)
    mark = len(engine.writes)
    await converge(engine, WITH_RESTART)
    assert [(w.action, w.target) for w in engine.writes[mark:]] == [("update", "worker")]
    assert by_name(engine) == before
    assert engine.containers[before["worker"]].spec.restart == "always"
    mark = len(engine.writes)
    for _ in range(3):  # the label still records "no": the engine's own policy is what counts
        plan = await plan_manifest(engine, manifest(WITH_RESTART))
        assert not plan.changes_anything
        await converge(engine, WITH_RESTART)
    assert engine.writes[mark:] == []


async def test_restart_and_env_change_replaces(engine: FakeEngine) -> None:
    await converge(engine, STACK)
    text = WITH_RESTART.replace("QUEUE: jobs", "QUEUE: other")
    plan = await plan_manifest(engine, manifest(text))
    (action,) = [a for a in plan.actions if a.changes_anything]
    assert action.kind == "replace" and {c.field for c in action.changes} == {
        "env.QUEUE", "restart"}


async def test_start_first_replacement_takes_back_its_name(engine: FakeEngine) -> None:
    await converge(engine, STACK)
    old = by_name(engine)["worker"]
    mark = len(engine.writes)
    await converge(engine, STACK.replace("QUEUE: jobs", "QUEUE: other"))
    names = by_name(engine)
    assert sorted(names) == ["api", "db", "worker"]
    assert names["worker"] != old
    writes = [(w.action, w.target) for w in engine.writes[mark:]]
    temp = writes[0][1]
    assert writes[0][0] == "create" and temp.startswith("worker.next-")
    assert writes == [("create", temp), ("start", temp), ("stop", "worker"),
                      ("remove", "worker"), ("rename", "worker")]
    assert engine.containers[names["worker"]].spec.env_dict["QUEUE"] == "other"
    mark = len(engine.writes)
    await converge(engine, STACK.replace("QUEUE: jobs", "QUEUE: other"))
    assert engine.writes[mark:] == []  # the renamed container is adopted as is


async def test_stop_first_replacement_keeps_the_plain_name(engine: FakeEngine) -> None:
    await converge(engine, STACK)
    mark = len(engine.writes)
    await converge(engine, STACK.replace("MODE: prod", "MODE: test"))  # fixed port 8080
    writes = [(w.action, w.target) for w in engine.writes[mark:]]
    temp = writes[1][1]
    assert writes == [("stop", "api"), ("create", temp), ("start", temp), ("remove", "api"),
                      ("rename", "api")]
    assert "api" in by_name(engine)


async def test_leftover_under_temporary_name_is_replaced_by_the_plain_name(
    engine: FakeEngine,
) -> None:
    await converge(engine, STACK)
    worker = by_name(engine)["worker"]
    await engine.rename(worker, "worker.next-0000")  # as an interrupted apply left it
    mark = len(engine.writes)
    await converge(engine, STACK.replace("QUEUE: jobs", "QUEUE: other"))
    writes = [(w.action, w.target) for w in engine.writes[mark:]]
    assert writes == [("create", "worker"), ("start", "worker"), ("stop", "worker.next-0000"),
                      ("remove", "worker.next-0000")]
