"""apply through the FakeEngine: no-op applies write nothing, changes replace exactly the
affected containers, replacements are health-gated."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipmate.converge.apply import apply_manifest, plan_manifest
from shipmate.converge.plan import Plan
from shipmate.errors import ConflictError, ValidationError
from shipmate.spec.container import PortMapping, make_spec
from shipmate.spec.manifest import load_manifest
from shipmate.testing.engine import FakeEngine
from tests.unit.converge.helpers import STACK, AutoClock, manifest


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(images=["shipmate/base:bookworm", "example/api:1"])


async def apply(engine: FakeEngine, text: str = STACK, **kw: object) -> object:
    result = await apply_manifest(engine, manifest(text), clock=AutoClock(), **kw)  # type: ignore[arg-type]
    assert result.ok, [o.message for o in result.failures]
    return result


def ids(engine: FakeEngine) -> dict[str, str]:
    return {c.labels["shipmate.container"]: c.id for c in engine.containers.values()}


async def test_first_apply_creates_in_dependency_order(engine: FakeEngine) -> None:
    await apply(engine)
    creates = [w.target for w in engine.writes if w.action == "create"]
    assert creates == ["db", "api", "worker"]
    assert all(c.state == "running" for c in engine.containers.values())
    assert all(c.labels["shipmate.manifest"] == "stack" for c in engine.containers.values())


async def test_hundred_reapplies_make_no_write(engine: FakeEngine) -> None:
    await apply(engine)
    before = list(engine.writes)
    for _ in range(100):
        result = await apply_manifest(engine, manifest(STACK), clock=AutoClock())
        assert result.outcomes == [] and not result.plan.changes_anything
    assert engine.writes == before


@pytest.mark.parametrize(("edit", "replaced"), [
    (("MODE: prod", "MODE: test"), {"api"}),  # one env value
    ((', DEBUG: "0"', ""), {"api"}),  # an env var removed
    (('"8080:80"', '"8081:80"'), {"api"}),  # a port
    (("{QUEUE: jobs}", "{QUEUE: jobs, EXTRA: x}"), {"worker"}),
])
async def test_change_replaces_exactly_the_affected(
    engine: FakeEngine, edit: tuple[str, str], replaced: set[str]
) -> None:
    await apply(engine)
    first = ids(engine)
    await apply(engine, STACK.replace(*edit))
    now = ids(engine)
    assert {n for n in first if first[n] != now[n]} == replaced
    assert len(engine.containers) == 3


async def test_moved_tag_replaces_only_its_users(engine: FakeEngine) -> None:
    await apply(engine)
    first = ids(engine)
    engine.add_image("example/api:1")  # the tag now points at a new image
    plan = await plan_manifest(engine, manifest(STACK))
    assert [(a.name, a.kind) for a in plan.actions if a.changes_anything] == [("api", "replace")]
    await apply(engine)
    now = ids(engine)
    assert {n for n in first if first[n] != now[n]} == {"api"}


async def test_fixed_port_kept_means_stop_first(engine: FakeEngine) -> None:
    await apply(engine)
    plan = await plan_manifest(engine, manifest(STACK.replace("MODE: prod", "MODE: x")))
    (api,) = [a for a in plan.actions if a.changes_anything]
    assert api.strategy == "stop-first" and "host port 8080" in api.reason
    plan = await plan_manifest(engine, manifest(STACK.replace("QUEUE: jobs", "QUEUE: x")))
    (worker,) = [a for a in plan.actions if a.changes_anything]
    assert worker.strategy == "start-first"


async def test_unhealthy_replacement_keeps_the_old_one(engine: FakeEngine) -> None:
    text = STACK.replace("env: {QUEUE: jobs}", "env: {QUEUE: jobs}\n        health: {test: ok}")
    await apply(engine, text)
    old = ids(engine)["worker"]
    engine.health_on_start = "unhealthy"
    engine.emit_log(old, "old log line")
    result = await apply_manifest(engine, manifest(text.replace("QUEUE: jobs", "QUEUE: x")),
                                  clock=AutoClock())
    assert not result.ok
    (failure,) = result.failures
    assert "failed its health check" in failure.message and "kept the old one" in failure.message
    assert ids(engine)["worker"] == old and engine.containers[old].state == "running"
    assert len(engine.containers) == 3  # the new one was removed


async def test_stop_first_failure_restarts_the_old_one(engine: FakeEngine) -> None:
    text = STACK.replace('ports: ["8080:80"]', 'ports: ["8080:80"]\n        health: {test: ok}')
    await apply(engine, text)
    old = ids(engine)["api"]
    engine.health_on_start = "unhealthy"
    result = await apply_manifest(engine, manifest(text.replace("MODE: prod", "MODE: x")),
                                  clock=AutoClock())
    assert not result.ok
    assert ids(engine)["api"] == old and engine.containers[old].state == "running"
    actions = [(w.action, w.target) for w in engine.writes[-5:]]
    assert actions[0] == ("stop", "api") and actions[-1] == ("start", "api")


async def test_exiting_replacement_is_refused_within_running_for(engine: FakeEngine) -> None:
    await apply(engine)
    old = ids(engine)["worker"]

    class ExitingClock(AutoClock):
        async def sleep(self, seconds: float) -> None:
            await super().sleep(seconds)
            for c in list(engine.containers.values()):
                if c.id != old and c.spec.name.startswith("worker.next") and c.state == "running":
                    engine.exit(c.id, 3)

    result = await apply_manifest(engine, manifest(STACK.replace("QUEUE: jobs", "QUEUE: x")),
                                  clock=ExitingClock())
    assert not result.ok and "exit code 3" in result.failures[0].message
    assert ids(engine)["worker"] == old


async def test_stopped_container_is_started_not_replaced(engine: FakeEngine) -> None:
    await apply(engine)
    first = ids(engine)
    await engine.stop(first["worker"])
    plan = await plan_manifest(engine, manifest(STACK))
    (action,) = [a for a in plan.actions if a.changes_anything]
    assert (action.name, action.kind) == ("worker", "update")
    await apply(engine)
    assert ids(engine) == first and engine.containers[first["worker"]].state == "running"


async def test_prune_removes_only_this_manifests_undeclared(engine: FakeEngine) -> None:
    await apply(engine)
    other = STACK.replace("name: stack", "name: other").replace("db:", "db2:").replace(
        "[db]", "[db2]").replace("api:\n", "api2:\n").replace("worker:", "worker2:").replace(
        '"8080:80"', '"8090:80"')
    await apply(engine, other)
    smaller = STACK.split("      worker:")[0]
    plan = await plan_manifest(engine, manifest(smaller))
    assert plan.orphans == ("worker",) and not plan.changes_anything
    await apply(engine, smaller, prune=True)
    names = sorted(c.spec.name for c in engine.containers.values())
    assert names == ["api", "api2", "db", "db2", "worker2"]


async def test_foreign_container_with_declared_name_is_refused(engine: FakeEngine) -> None:
    cid = await engine.create(make_spec("worker", "shipmate/base:bookworm"))
    with pytest.raises(ConflictError, match="not managed by manifest stack"):
        await apply_manifest(engine, manifest(STACK), clock=AutoClock())
    assert [w.action for w in engine.writes] == ["create"] and cid in engine.containers


async def test_host_port_held_by_another_container_is_refused(engine: FakeEngine) -> None:
    cid = await engine.create(make_spec("intruder", "shipmate/base:bookworm",
                                        ports=[PortMapping(80, 8080)]))
    await engine.start(cid)
    with pytest.raises(ConflictError, match=r"stack.yaml:\d+: host port 8080/tcp of api"):
        await apply_manifest(engine, manifest(STACK), clock=AutoClock())
    assert len(engine.writes) == 2


async def test_missing_image_refused_before_any_change() -> None:
    engine = FakeEngine(images=["shipmate/base:bookworm"])
    with pytest.raises(ValidationError, match=r"stack.yaml:\d+: container api: image "):
        await apply_manifest(engine, manifest(STACK), clock=AutoClock())
    assert engine.writes == []


async def test_saved_plan_refused_when_host_changed(engine: FakeEngine) -> None:
    await apply(engine)
    changed = manifest(STACK.replace("MODE: prod", "MODE: x"))
    saved = Plan.from_json((await plan_manifest(engine, changed)).to_json())
    await engine.stop(ids(engine)["worker"])  # the host changes after the plan was made
    writes = len(engine.writes)
    with pytest.raises(ConflictError, match="host changed"):
        await apply_manifest(engine, changed, saved=saved, clock=AutoClock())
    assert len(engine.writes) == writes


async def test_saved_plan_refused_when_manifest_changed(engine: FakeEngine) -> None:
    saved = await plan_manifest(engine, manifest(STACK))
    with pytest.raises(ConflictError, match="changed since the plan was saved"):
        await apply_manifest(engine, manifest(STACK.replace("jobs", "x")), saved=saved)
    assert engine.writes == []


async def test_saved_plan_applies_when_nothing_changed(engine: FakeEngine) -> None:
    saved = Plan.from_json((await plan_manifest(engine, manifest(STACK))).to_json())
    result = await apply_manifest(engine, manifest(STACK), saved=saved, clock=AutoClock())
    assert result.ok and len(engine.containers) == 3


async def test_plan_shows_secrets_only_as_hashes(engine: FakeEngine) -> None:
    await apply(engine)
    plan = await plan_manifest(engine, manifest(STACK.replace("hunter2", "swordfish")))
    text = repr(plan.to_json())
    assert "hunter2" not in text and "swordfish" not in text and "sha256:" in text


async def test_image_built_once_and_rebuilt_on_context_change(
    engine: FakeEngine, tmp_path: Path
) -> None:
    root = tmp_path
    (root / "site").mkdir()
    (root / "site" / "Dockerfile").write_text("FROM shipmate/base:bookworm\n")
    text = ("images:\n  - {tag: example/site:1, build: ./site}\n"
            "containers:\n  site: {image: example/site:1, command: [sleep, infinity]}\n")
    (root / "m.yaml").write_text(text)
    r1 = await apply_manifest(engine, load_manifest(root / "m.yaml"), clock=AutoClock())
    assert r1.ok and [w.action for w in engine.writes] == ["build", "create", "start"]
    r2 = await apply_manifest(engine, load_manifest(root / "m.yaml"), clock=AutoClock())
    assert r2.outcomes == [] and len(engine.writes) == 3
    (root / "site" / "app.txt").write_text("v2")
    r3 = await apply_manifest(engine, load_manifest(root / "m.yaml"), clock=AutoClock())
    assert r3.ok
    assert [w.action for w in engine.writes[3:]] == ["build", "create", "start", "stop",
                                                     "remove", "rename"]
