"""The in-memory engine behaves like the real one where converge, agents and deploys look."""

from __future__ import annotations

import asyncio

import pytest

from shipmate.errors import EngineConflictError, EngineError, NotFoundError
from shipmate.spec.container import SPEC_HASH_LABEL, HealthCheck, PortMapping, make_spec, spec_hash
from shipmate.testing import FakeEngine


def spec(name="web.1", **kw):
    kw.setdefault("ports", [PortMapping(5000), PortMapping(80, 8080, "127.0.0.1")])
    return make_spec(name, "shipmate/node:18", labels={"app": "web"}, **kw)


async def test_lifecycle_records_writes_and_events():
    engine = FakeEngine(images=["shipmate/node:18"])
    s = spec()
    cid = await engine.create(s, extra_labels={"release": "v1"})
    info = await engine.inspect("web.1")
    assert info is not None and info.id == cid and info.state == "created"
    assert info.labels[SPEC_HASH_LABEL] == spec_hash(s) and info.labels["release"] == "v1"
    await engine.start(cid)
    info = await engine.inspect(cid)
    assert info is not None and info.running and info.pid > 0
    assert {(p.container_port, p.host_ip) for p in info.ports} == {(5000, "0.0.0.0"),
                                                                   (80, "127.0.0.1")}
    assert all(p.host_port for p in info.ports)
    await engine.stop(cid)
    await engine.remove(cid)
    assert await engine.inspect(cid) is None
    assert [(w.action, w.target) for w in engine.writes] == [
        ("create", "web.1"), ("start", "web.1"), ("stop", "web.1"), ("remove", "web.1")]
    assert [e.action for e in engine.emitted] == ["create", "start", "die", "stop", "destroy"]


async def test_reads_make_no_writes():
    engine = FakeEngine(images=["shipmate/node:18"])
    await engine.start(await engine.create(spec()))
    engine.writes.clear()
    await engine.list({"app": "web"})
    await engine.inspect("web.1")
    await engine.image("shipmate/node:18")
    assert engine.writes == []


async def test_errors_like_docker():
    engine = FakeEngine(images=["shipmate/node:18"])
    with pytest.raises(NotFoundError):
        await engine.create(make_spec("xx", "missing/image:1"))
    cid = await engine.create(spec())
    with pytest.raises(EngineConflictError):
        await engine.create(spec())
    await engine.start(cid)
    with pytest.raises(EngineError):
        await engine.remove(cid)
    await engine.remove(cid, force=True)
    await engine.remove(cid)  # missing is fine
    with pytest.raises(NotFoundError):
        await engine.start(cid)


async def test_list_filters_by_labels_and_state():
    engine = FakeEngine(images=["shipmate/node:18"])
    a = await engine.create(spec("aa"))
    await engine.create(make_spec("bb", "shipmate/node:18", labels={"app": "api"}))
    await engine.start(a)
    assert [c.name for c in await engine.list({"app": "web"})] == ["aa"]
    assert {c.name for c in await engine.list()} == {"aa", "bb"}
    assert [c.name for c in await engine.list(all=False)] == ["aa"]


async def test_health_and_exit_hooks():
    engine = FakeEngine(images=["shipmate/node:18"], health_on_start="starting")
    cid = await engine.create(spec(health=HealthCheck(("true",))))
    await engine.start(cid)
    assert (await engine.inspect(cid)).health == "starting"
    engine.set_health(cid, "unhealthy")
    assert (await engine.inspect(cid)).health == "unhealthy"
    waiter = asyncio.create_task(engine.wait(cid))
    await asyncio.sleep(0)
    engine.exit(cid, 137)
    assert await waiter == 137
    info = await engine.inspect(cid)
    assert info.state == "exited" and info.exit_code == 137


async def test_events_stream_with_filters():
    engine = FakeEngine(images=["shipmate/node:18"])
    seen = []

    async def watch():
        async for event in engine.events({"type": ["container"], "event": ["start", "die"]}):
            seen.append(event.action)
            if len(seen) == 2:
                return

    task = asyncio.create_task(watch())
    await asyncio.sleep(0)
    cid = await engine.create(spec())
    await engine.start(cid)
    engine.exit(cid, 1)
    await asyncio.wait_for(task, 1)
    assert seen == ["start", "die"]


async def test_logs_follow_until_exit_and_exec():
    engine = FakeEngine(images=["shipmate/node:18"])
    cid = await engine.create(spec())
    await engine.start(cid)
    engine.emit_log(cid, "one", "two")
    assert [line async for line in engine.logs(cid, tail=1)] == ["two"]
    got = []

    async def follow():
        async for line in engine.logs(cid, follow=True):
            got.append(line)

    task = asyncio.create_task(follow())
    await asyncio.sleep(0)
    engine.emit_log(cid, "three")
    await asyncio.sleep(0)
    engine.exit(cid, 0)
    await asyncio.wait_for(task, 1)
    assert got == ["one", "two", "three"]
    with pytest.raises(EngineError):
        await engine.exec(cid, ["true"])


async def test_images_build_save_load_remove():
    engine = FakeEngine()
    lines: list[str] = []
    image_id = await engine.build("/ctx", "app/web:1", labels={"k": "v"}, on_line=lines.append)
    assert lines and (await engine.image("app/web:1")).id == image_id
    data = [c async for c in engine.save_image("app/web:1")]
    await engine.remove_image("app/web:1")
    assert await engine.image("app/web:1") is None and await engine.image(image_id) is None

    async def replay():
        for chunk in data:
            yield chunk

    assert await engine.load_image(replay()) == ["app/web:1"]
    assert (await engine.image("app/web:1")).labels == {"k": "v"}
    await engine.tag_image("app/web:1", "app/web", "latest")
    assert await engine.image("app/web") is not None


async def test_injected_failure_is_raised_once():
    engine = FakeEngine(images=["shipmate/node:18"])
    engine.fail["start"] = EngineError("boom")
    cid = await engine.create(spec())
    with pytest.raises(EngineError, match="boom"):
        await engine.start(cid)
    await engine.start(cid)
