""".container units through the real Docker engine: create and start, adopt by spec hash
after a restart (same container ID), replace on a changed spec (start-first, health-gated: a
new spec that fails its HealthCmd keeps the old container serving), stop and remove."""

from __future__ import annotations

import asyncio
import os
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from shipmate.agent.containers import MACHINE_LABEL, ContainerUnits
from shipmate.engine.docker import DockerEngine
from shipmate.spec.unitcontainer import container_spec
from shipmate.spec.unitfile import parse

pytestmark = pytest.mark.integration
RUN = uuid.uuid4().hex[:8]
IMAGE = f"shipmate-test/agent-tiny:{RUN}"


def _libs(binary: str) -> list[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    paths = []
    for line in out.splitlines():
        part = line.split("=>")[-1].strip().split(" ")[0]
        if part.startswith("/"):
            paths.append(part)
    return paths


def build_tiny_image(tag: str) -> None:
    """An image with /bin/sh, sleep and echo and their libraries: enough to run a unit."""
    files = {"/bin/sh", "/bin/sleep", "/bin/echo"}
    for b in list(files):
        files.update(_libs(os.path.realpath(b)))
    with tempfile.NamedTemporaryFile(suffix=".tar") as tmp:
        with tarfile.open(tmp.name, "w") as tar:
            for f in sorted(files):
                tar.add(os.path.realpath(f), arcname=f.lstrip("/"))
        subprocess.run(["docker", "import", tmp.name, tag], check=True, capture_output=True)


@pytest.fixture(scope="module")
def tiny_image(docker_host: str) -> Iterator[str]:
    build_tiny_image(IMAGE)
    yield IMAGE
    subprocess.run(["docker", "rmi", "-f", IMAGE], capture_output=True)


@pytest.fixture
async def engine(docker_host: str) -> AsyncIterator[DockerEngine]:
    e = DockerEngine(docker_host)
    yield e
    for info in await e.list({MACHINE_LABEL: f"m-{RUN}"}):
        await e.remove(info.id, force=True)
    await e.close()


def unit_spec(name: str, image: str, message: str, health: str = "") -> object:
    text = f"""[Container]
Image={image}
Exec=/bin/sh -c 'echo {message} %n; exec /bin/sleep 1000'
ContainerName=shipmate-test-{RUN}-%p
"""
    if health:
        text += f"HealthCmd={health}\nHealthInterval=1s\nHealthRetries=1\n"
    return container_spec(parse(text), name, hostname="h", machine_id=f"m-{RUN}")


class Changes:
    """Waits for ContainerUnits' ``on_change`` (a background replacement finished)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def __call__(self, _unit: str) -> None:
        self.event.set()

    async def wait(self, timeout: float = 60) -> None:
        await asyncio.wait_for(self.event.wait(), timeout)
        self.event.clear()


async def test_start_adopt_replace_stop(engine: DockerEngine, tiny_image: str) -> None:
    machine = f"m-{RUN}"
    units = ContainerUnits(engine, machine, stop_timeout=1)
    spec = unit_spec("web.container", tiny_image, "hello")
    status = await units.start("web.container", spec)  # type: ignore[arg-type]
    assert (status.active, status.sub) == ("active", "running")
    first_id = status.container_id
    lines = [line async for line in units.logs("web.container", lines=5)]
    assert any("hello web.container" in line for line in lines)

    # a restarted agent: a fresh object finds and adopts the same container
    changes = Changes()
    again = ContainerUnits(engine, machine, stop_timeout=1, on_change=changes, poll=0.2)
    assert await again.open() == ["web.container"]
    status = await again.start("web.container", spec)  # type: ignore[arg-type]
    assert status.container_id == first_id

    # another machine sharing the engine does not see it as its own
    other = ContainerUnits(engine, f"other-{RUN}")
    assert await other.open() == []

    changed = unit_spec("web.container", tiny_image, "changed")
    status = await again.start("web.container", changed)  # type: ignore[arg-type]
    assert status.container_id == first_id and status.active == "activating"
    await changes.wait()  # the new one stayed up for 2 s: it replaced the old one
    status = again.status("web.container")  # type: ignore[assignment]
    assert status.container_id != first_id and status.active == "active"
    assert await engine.inspect(first_id) is None
    info = await engine.inspect(status.container_id)
    assert info is not None and info.name == f"shipmate-test-{RUN}-web"

    await again.stop("web.container")
    assert await engine.list({MACHINE_LABEL: machine}) == []
    assert again.status("web.container") is None


async def test_a_new_spec_failing_its_health_check_keeps_the_old_container(
        engine: DockerEngine, tiny_image: str) -> None:
    machine, unit = f"m-{RUN}", "api.container"
    changes = Changes()
    units = ContainerUnits(engine, machine, stop_timeout=1, on_change=changes, poll=0.2)
    good = unit_spec(unit, tiny_image, "good", health="exit 0")
    status = await units.start(unit, good)  # type: ignore[arg-type]
    old = status.container_id
    deadline = asyncio.get_running_loop().time() + 30
    while (await engine.inspect(old)).health != "healthy":  # type: ignore[union-attr]
        assert asyncio.get_running_loop().time() < deadline, "never healthy"
        await asyncio.sleep(0.2)

    bad = unit_spec(unit, tiny_image, "bad", health="exit 1")
    status = await units.start(unit, bad)  # type: ignore[arg-type]
    assert status.active == "activating"
    await changes.wait()
    status = units.status(unit)  # type: ignore[assignment]
    assert (status.active, status.sub) == ("failed", "failed")
    assert "failed its health check" in status.result and "kept the old one" in status.result
    assert "bad api.container" in status.error  # the new container's last log lines
    info = await engine.inspect(old)
    assert info is not None and info.running and info.name == f"shipmate-test-{RUN}-api"
    assert [c.id for c in await units._mine(unit)] == [old]

    # the agent calls start again on its next pass: the failed spec is not retried
    again = await units.start(unit, bad)  # type: ignore[arg-type]
    assert again.active == "failed" and [c.id for c in await units._mine(unit)] == [old]
    await units.stop(unit)
