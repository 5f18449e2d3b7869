""".container units through the real Docker engine: create and start, adopt by spec hash
after a restart (same container ID), replace on a changed spec, stop and remove."""

from __future__ import annotations

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


def unit_spec(name: str, image: str, message: str) -> object:
    text = f"""[Container]
Image={image}
Exec=/bin/sh -c 'echo {message} %n; exec /bin/sleep 1000'
ContainerName=shipmate-test-{RUN}-%p
"""
    return container_spec(parse(text), name, hostname="h", machine_id=f"m-{RUN}")


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
    again = ContainerUnits(engine, machine, stop_timeout=1)
    assert await again.open() == ["web.container"]
    status = await again.start("web.container", spec)  # type: ignore[arg-type]
    assert status.container_id == first_id

    # another machine sharing the engine does not see it as its own
    other = ContainerUnits(engine, f"other-{RUN}")
    assert await other.open() == []

    changed = unit_spec("web.container", tiny_image, "changed")
    status = await again.start("web.container", changed)  # type: ignore[arg-type]
    assert status.container_id != first_id and status.active == "active"
    assert await engine.inspect(first_id) is None

    await again.stop("web.container")
    assert await engine.list({MACHINE_LABEL: machine}) == []
    assert again.status("web.container") is None
