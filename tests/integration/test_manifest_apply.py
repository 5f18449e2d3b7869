"""Manifests against the real dockerd: no-op re-applies write nothing (checked through the
engine's events), changes replace exactly the affected containers, failed replacements keep
the old container."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shipmate.converge.apply import apply_manifest, plan_manifest
from shipmate.engine.base import EngineEvent
from shipmate.engine.docker import DockerEngine
from shipmate.spec.manifest import MANIFEST_LABEL, load_manifest

pytestmark = pytest.mark.integration
BASE = "shipmate/base:bookworm"
# sleep as PID 1 ignores SIGTERM (every stop would wait 10 s): trap it.
IDLE = """["sh", "-c", "trap 'exit 0' TERM; sleep infinity & wait"]"""
WRITES = {"create", "start", "stop", "kill", "die", "destroy", "rename", "update"}


@pytest.fixture
async def engine(docker_host: str) -> AsyncIterator[DockerEngine]:
    eng = DockerEngine(docker_host)
    if await eng.image(BASE) is None:
        pytest.fail(f"{BASE} missing: run `shipmate images:bootstrap` (scripts/bootstrap does)")
    yield eng
    await eng.close()


@pytest.fixture
async def name(engine: DockerEngine) -> AsyncIterator[str]:
    """A manifest name unique to the test; its containers are removed afterwards."""
    manifest_name = f"it-{uuid.uuid4().hex[:8]}"
    yield manifest_name
    for c in await engine.list({MANIFEST_LABEL: manifest_name}):
        await engine.remove(c.id, force=True)
    await engine.remove_image(f"shipmate-test/{manifest_name}:1", force=True)


def write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text(f"name: {name}\n" + textwrap.dedent(body))
    return path


def stack(name: str, moving: str, *, a_env: str = "{MODE: prod, DEBUG: '0'}",
          b_port: str = "0:80") -> str:
    return f"""\
        containers:
          {name}-a:
            image: {BASE}
            command: {IDLE}
            env: {a_env}
            health: {{running_for: 1s}}
            labels: {{test: {name}}}
          {name}-b:
            image: {BASE}
            command: {IDLE}
            ports: ["127.0.0.1:{b_port}"]
            health: {{running_for: 1s}}
            depends_on: [{name}-a]
          {name}-c:
            image: {moving}
            command: {IDLE}
            health: {{running_for: 1s}}
        """


async def ids(engine: DockerEngine, name: str) -> dict[str, str]:
    return {c.labels["shipmate.container"].removeprefix(name + "-"): c.id
            for c in await engine.list({MANIFEST_LABEL: name})}


async def test_reapply_100_times_makes_no_docker_write(
    engine: DockerEngine, name: str, tmp_path: Path
) -> None:
    moving = f"shipmate-test/{name}:1"
    await engine.tag_image(BASE, *moving.split(":"))
    path = write(tmp_path, name, stack(name, moving))
    first = await apply_manifest(engine, load_manifest(path))
    assert first.ok, [o.message for o in first.failures]
    events: list[EngineEvent] = []

    async def collect() -> None:
        async for ev in engine.events({"type": ["container"]}):
            if ev.attributes.get(MANIFEST_LABEL) == name:
                events.append(ev)

    task = asyncio.create_task(collect())
    containers = await ids(engine, name)
    # The stream is open once it reports an exec (which writes nothing the manifest owns).
    for _ in range(50):
        await engine.exec(containers["a"], ["true"])
        if any(e.action.startswith("exec_start") for e in events):
            break
        await asyncio.sleep(0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(100):
        result = await apply_manifest(engine, load_manifest(path))
        assert result.outcomes == [] and not result.plan.changes_anything
    elapsed = loop.time() - started
    # A write of our own closes the window: the stream is ordered, so a write of the applies
    # would arrive before the events of this stop.
    await engine.stop(containers["a"], timeout=5)
    for _ in range(100):
        if any(e.action == "stop" for e in events):
            break
        await asyncio.sleep(0.2)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert any(e.action == "stop" for e in events)
    ours = next(i for i, e in enumerate(events) if e.action in ("kill", "die", "stop"))
    assert [e.action for e in events[:ours] if e.action.split(":")[0] in WRITES] == []
    assert [e.action for e in events[ours:]].count("stop") == 1  # and after it, ours alone
    assert {e.id for e in events[ours:]} == {containers["a"]}
    assert elapsed / 100 < 1.0


async def test_changes_replace_exactly_the_affected(
    engine: DockerEngine, name: str, tmp_path: Path
) -> None:
    moving = f"shipmate-test/{name}:1"
    await engine.tag_image(BASE, *moving.split(":"))
    path = write(tmp_path, name, stack(name, moving))
    assert (await apply_manifest(engine, load_manifest(path))).ok
    steps = [
        ({"a_env": "{MODE: test, DEBUG: '0'}"}, {"a"}),  # one env value changed
        ({"a_env": "{MODE: test}"}, {"a"}),  # an env var removed
        ({"a_env": "{MODE: test}", "b_port": "0:81"}, {"b"}),  # a port changed
    ]
    for kwargs, expected in steps:
        before = await ids(engine, name)
        path = write(tmp_path, name, stack(name, moving, **kwargs))
        result = await apply_manifest(engine, load_manifest(path))
        assert result.ok, [o.message for o in result.failures]
        after = await ids(engine, name)
        assert {k for k in before if before[k] != after[k]} == expected, kwargs
    # move the tag: the same reference now names another image
    before = await ids(engine, name)
    await engine.tag_image("shipmate/python:3.11", *moving.split(":"))
    plan = await plan_manifest(engine, load_manifest(path))
    assert [a.name for a in plan.actions if a.changes_anything] == [f"{name}-c"]
    assert (await apply_manifest(engine, load_manifest(path))).ok
    after = await ids(engine, name)
    assert {k for k in before if before[k] != after[k]} == {"c"}
    assert len(after) == 3
    for c in await engine.list({MANIFEST_LABEL: name}):
        assert c.running


async def test_failing_replacement_keeps_the_old_container(
    engine: DockerEngine, name: str, tmp_path: Path
) -> None:
    body = f"""\
        containers:
          {name}-svc:
            image: {BASE}
            command: COMMAND
            health: {{running_for: 2s, wait: 20s}}
        """
    path = write(tmp_path, name, body.replace("COMMAND", IDLE))
    assert (await apply_manifest(engine, load_manifest(path))).ok
    (old,) = (await ids(engine, name)).values()
    path = write(tmp_path, name, body.replace(
        "COMMAND", """["sh", "-c", "echo broken config >&2; exit 3"]"""))
    result = await apply_manifest(engine, load_manifest(path))
    assert not result.ok
    message = result.failures[0].message
    assert "exit code 3" in message and "kept the old one" in message
    assert "broken config" in message
    containers = await engine.list({MANIFEST_LABEL: name})
    assert [c.id for c in containers] == [old] and containers[0].running


async def test_resource_limits_reach_the_container(
    engine: DockerEngine, name: str, tmp_path: Path
) -> None:
    path = write(tmp_path, name, f"""\
        containers:
          {name}-lim:
            image: {BASE}
            command: {IDLE}
            health: {{running_for: 1s}}
            memory: 64m
            memory_reservation: 32m
            cpus: 0.5
        """)
    result = await apply_manifest(engine, load_manifest(path))
    assert result.ok, [o.message for o in result.failures]
    proc = await asyncio.create_subprocess_exec(
        "docker", "inspect", "--format",
        "{{.HostConfig.Memory}} {{.HostConfig.MemoryReservation}} {{.HostConfig.NanoCpus}}",
        f"{name}-lim", stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert out.decode().split() == [str(64 * 2**20), str(32 * 2**20), "500000000"]
    plan = await plan_manifest(engine, load_manifest(path))
    assert not plan.changes_anything  # what dockerd reports matches what was declared
