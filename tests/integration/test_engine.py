"""The Docker adapter against the real dockerd: containers, logs, events, exec, builds, and
image import/save/load. Containers run from shipmate/base:bookworm, bootstrapped once if
missing (idempotent: a warm machine skips it)."""

from __future__ import annotations

import asyncio
import io
import tarfile
import time

import pytest

from shipmate.engine.base import EngineEvent
from shipmate.engine.docker import DockerEngine
from shipmate.errors import EngineConflictError, EngineError, EngineUnavailableError, NotFoundError
from shipmate.spec.container import (
    MANAGED_LABEL,
    SPEC_HASH_LABEL,
    HealthCheck,
    PortMapping,
    make_spec,
    spec_hash,
)
from tests.integration.engine_helpers import RUN_ID, TEST_LABEL, name

pytestmark = pytest.mark.integration
BASE = "shipmate/base:bookworm"


async def test_container_lifecycle_labels_ports_exec_health(engine: DockerEngine, base_image):
    spec = make_spec(
        name("life"), base_image,
        command=["bash", "-c", "echo started; exec sleep 300"],
        env={"GREETING": "hello world", "EMPTY": ""},
        ports=[PortMapping(8000, 0, "127.0.0.1"), PortMapping(5353, 0, "127.0.0.1", "udp")],
        labels={"app": "life"}, restart="no", hostname="lifehost", working_dir="/tmp",
        health=HealthCheck(("test -d /tmp",), interval=0.5, timeout=2, retries=2),
    )
    cid = await engine.create(spec, extra_labels={TEST_LABEL: RUN_ID})
    info = await engine.inspect(spec.name)
    assert info is not None and info.id == cid and info.state == "created"
    assert info.labels[SPEC_HASH_LABEL] == spec_hash(spec)
    assert info.labels[MANAGED_LABEL] == "1" and info.labels["app"] == "life"
    assert info.env["GREETING"] == "hello world" and info.env["EMPTY"] == ""

    await engine.start(cid)
    info = await engine.inspect(cid)
    assert info is not None and info.running and info.pid > 0 and info.ip_address
    bound = {(p.container_port, p.protocol): p for p in info.ports}
    assert set(bound) == {(8000, "tcp"), (5353, "udp")}
    assert all(p.host_ip == "127.0.0.1" and p.host_port > 0 for p in bound.values())

    script = 'echo "$GREETING from $(hostname) in $PWD"; exit 3'
    code, out = await engine.exec(cid, ["bash", "-c", script])
    assert (code, out.strip()) == (3, "hello world from lifehost in /tmp")

    for _ in range(40):  # health moves from starting to healthy in a couple of intervals
        info = await engine.inspect(cid)
        if info is not None and info.health == "healthy":
            break
        await asyncio.sleep(0.25)
    assert info is not None and info.health == "healthy"

    assert [c.id for c in await engine.list({"app": "life", TEST_LABEL: RUN_ID})] == [cid]
    await engine.stop(cid, timeout=1)
    await engine.stop(cid, timeout=1)  # stopping a stopped container is fine
    info = await engine.inspect(cid)
    assert info is not None and info.state == "exited" and info.ports == ()
    assert await engine.list({"app": "life", TEST_LABEL: RUN_ID}, all=False) == []
    await engine.remove(cid)
    await engine.remove(cid)  # a missing one is fine
    assert await engine.inspect(cid) is None


async def test_name_conflict_and_missing_things(engine: DockerEngine, base_image):
    spec = make_spec(name("dup"), base_image, command=["true"])
    await engine.create(spec, extra_labels={TEST_LABEL: RUN_ID})
    with pytest.raises(EngineConflictError):
        await engine.create(spec, extra_labels={TEST_LABEL: RUN_ID})
    with pytest.raises(NotFoundError):
        await engine.start("sm-test-no-such-container")
    with pytest.raises(NotFoundError):
        await engine.create(make_spec(name("noimg"), "shipmate/no-such-image:1"))
    assert await engine.image("shipmate/no-such-image:1") is None


async def test_unreachable_engine_says_how_to_start_one(tmp_path):
    engine = DockerEngine(f"unix://{tmp_path}/docker.sock")
    with pytest.raises(EngineUnavailableError) as info:
        await engine.version()
    assert "dockerd" in (info.value.hint or "")
    await engine.close()


async def test_logs_follow_and_wait(engine: DockerEngine, base_image):
    spec = make_spec(name("logs"), base_image, command=[
        "bash", "-c",
        "for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.3; done; echo last; exit 4"])
    cid = await engine.create(spec, extra_labels={TEST_LABEL: RUN_ID})
    await engine.start(cid)
    lines = []
    async for line in engine.logs(cid, follow=True):
        lines.append(line)
    assert [x for x in lines if x.startswith("out")] == ["out1", "out2", "out3"]
    assert [x for x in lines if x.startswith("err")] == ["err1", "err2", "err3"]
    assert await engine.wait(cid) == 4
    assert lines[-1] == "last"
    assert [line async for line in engine.logs(cid, tail=1)] == ["last"]


async def test_follow_can_be_abandoned_while_idle(engine: DockerEngine, base_image):
    spec = make_spec(name("idle"), base_image, command=["bash", "-c", "echo one; exec sleep 300"])
    cid = await engine.create(spec, extra_labels={TEST_LABEL: RUN_ID})
    await engine.start(cid)
    stream = engine.logs(cid, follow=True)
    assert await asyncio.wait_for(anext(stream), 10) == "one"
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(anext(stream), 0.5)  # idle: the loop stays free meanwhile
    await stream.aclose()
    assert (await engine.version())["ApiVersion"]


async def test_events_stream(engine: DockerEngine, base_image):
    spec = make_spec(name("events"), base_image, command=["true"])
    seen: list[EngineEvent] = []

    async def watch():
        async for event in engine.events({"type": ["container"], "container": [spec.name]}):
            seen.append(event)
            if event.action == "destroy":
                return

    task = asyncio.create_task(watch())
    await asyncio.sleep(0.5)  # let the subscription reach the engine
    cid = await engine.create(spec, extra_labels={TEST_LABEL: RUN_ID})
    await engine.start(cid)
    assert await engine.wait(cid) == 0
    await engine.remove(cid)
    await asyncio.wait_for(task, 20)
    actions = [e.action for e in seen]
    assert actions[0] == "create" and actions[-1] == "destroy"
    assert {"start", "die"} <= set(actions)
    assert all(e.id == cid for e in seen)
    assert seen[0].attributes["name"] == spec.name


async def test_build_streams_lines_as_they_come(engine: DockerEngine, base_image, tmp_path):
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base_image}\nRUN echo first-{RUN_ID} && sleep 2 && echo second-{RUN_ID}\n")
    tag = f"shipmate-test/build:{RUN_ID}"
    seen: dict[str, float] = {}

    def on_line(line: str) -> None:
        seen.setdefault(line.strip(), time.monotonic())

    try:
        image_id = await engine.build(str(tmp_path), tag, labels={"k": "v"}, on_line=on_line)
        info = await engine.image(tag)
        assert info is not None and info.id == image_id and image_id.startswith("sha256:")
        assert info.labels["k"] == "v"
        first, second = seen[f"first-{RUN_ID}"], seen[f"second-{RUN_ID}"]
        assert second - first > 1.0  # delivered while the step still ran, not at the end
    finally:
        await engine.remove_image(tag, force=True)


async def test_failing_build_reports_the_step_output(engine: DockerEngine, base_image, tmp_path):
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base_image}\nRUN echo about-to-fail-{RUN_ID} && exit 7\n")
    with pytest.raises(EngineError) as info:
        await engine.build(str(tmp_path), f"shipmate-test/broken:{RUN_ID}")
    assert f"about-to-fail-{RUN_ID}" in info.value.message
    assert "7" in info.value.message


def tiny_rootfs() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = f"shipmate {RUN_ID}\n".encode()
        entry = tarfile.TarInfo("etc/shipmate-test")
        entry.size = len(data)
        tar.addfile(entry, io.BytesIO(data))
    return buf.getvalue()


async def chunked(data: bytes, size: int = 1000):
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def test_import_save_load_roundtrip(engine: DockerEngine):
    repo, tag = "shipmate-test/tiny", RUN_ID
    ref = f"{repo}:{tag}"
    try:
        image_id = await engine.import_image(chunked(tiny_rootfs()), repo, tag)
        info = await engine.image(ref)
        assert info is not None and info.id == image_id and ref in info.tags
        await engine.tag_image(ref, repo, f"{tag}-copy")
        assert (await engine.image(f"{ref}-copy")).id == image_id
        saved = b"".join([chunk async for chunk in engine.save_image(ref)])
        with tarfile.open(fileobj=io.BytesIO(saved)) as tar:
            assert "manifest.json" in tar.getnames()
        await engine.remove_image(f"{ref}-copy")
        await engine.remove_image(ref)
        assert await engine.image(image_id) is None
        assert await engine.load_image(chunked(saved, 4096)) == [ref]
        assert (await engine.image(ref)).id == image_id
    finally:
        await engine.remove_image(ref, force=True)
        await engine.remove_image(f"{ref}-copy", force=True)


async def test_save_missing_image_is_not_found(engine: DockerEngine):
    with pytest.raises(NotFoundError):
        async for _ in engine.save_image(f"shipmate-test/missing:{RUN_ID}"):
            pass


async def test_engine_address_is_explicit_not_from_environment(docker_host, monkeypatch):
    """DOCKER_HOST / DOCKER_CONTEXT pointing elsewhere do not matter: the address given wins."""
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    monkeypatch.setenv("DOCKER_CONTEXT", "nonexistent")
    engine = DockerEngine(docker_host)
    try:
        assert (await engine.version())["ApiVersion"]
    finally:
        await engine.close()


async def test_init_makes_a_pid_1_that_ignores_sigterm_stop_at_once(engine: DockerEngine,
                                                                    base_image):
    """`sleep` installs no SIGTERM handler: as PID 1 the kernel drops the signal and
    `docker stop` waits out its timeout; under the init (docker-init, tini) it ends at once."""
    took: dict[bool, float] = {}
    codes: dict[bool, int] = {}
    for init in (True, False):
        spec = make_spec(name(f"init-{init}"), base_image, command=["sleep", "300"], init=init)
        cid = await engine.create(spec, extra_labels={TEST_LABEL: RUN_ID})
        await engine.start(cid)
        started = time.monotonic()
        await engine.stop(cid, timeout=3)
        took[init] = time.monotonic() - started
        info = await engine.inspect(cid)
        assert info is not None and info.state == "exited"
        codes[init] = info.exit_code
        assert (info.raw.get("HostConfig") or {}).get("Init") is (True if init else None)
        await engine.remove(cid, force=True)
    assert took[True] < 1.5, took
    assert took[False] >= 2.9, took  # the control: without the init, the whole timeout
    assert codes == {True: 143, False: 137}
