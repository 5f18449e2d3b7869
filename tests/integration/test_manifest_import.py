"""The book's example as a Chef recipe and a Puppet manifest: import, apply, and the
container answers HTTP on port 80 (or, when the host's port 80 is taken, e.g. by the router,
on a free port: the test then overrides only the host port of the imported manifest)."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shipmate.cli.main import main
from shipmate.converge.apply import apply_manifest
from shipmate.engine.docker import DockerEngine
from shipmate.spec.manifest import MANIFEST_LABEL, load_manifest
from tests.conftest import free_port

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).parents[2] / "examples" / "manifests"
DATA = Path("/tmp/shipmate-example-data")  # the volume the examples mount


def port_80_free() -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", 80))
        except OSError:
            return False
    return True


@pytest.fixture
async def engine(docker_host: str) -> AsyncIterator[DockerEngine]:
    eng = DockerEngine(docker_host)
    if await eng.image("shipmate/python:3.11") is None:
        pytest.fail("shipmate/python:3.11 missing: run `shipmate images:bootstrap`")
    yield eng
    for c in await eng.list({MANIFEST_LABEL: "node-app"}):
        await eng.remove(c.id, force=True)
    await eng.close()


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


@pytest.mark.parametrize(("kind", "source"), [("chef", "node-app.rb"), ("puppet", "node-app.pp")])
async def test_imported_example_answers_http(
    engine: DockerEngine, tmp_path: Path, kind: str, source: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "node-app.yaml"
    args = ["import", kind, str(EXAMPLES / source), "-o", str(out)]
    assert await asyncio.to_thread(main, args) == 0  # main runs its own event loop
    assert "not translated" in capsys.readouterr().err
    text = out.read_text()
    assert '80:8000' in text and "NODE_PORT: '8000'" in text
    port = 80
    if not port_80_free():
        port = free_port()
        out.write_text(text.replace("80:8000", f"{port}:8000"))
    DATA.mkdir(exist_ok=True)
    (DATA / "hello.txt").write_text(f"hello from {kind}\n")
    result = await apply_manifest(engine, load_manifest(out))
    assert result.ok, [o.message for o in result.failures]
    (container,) = await engine.list({MANIFEST_LABEL: "node-app"})
    assert container.env["NODE_PORT"] == "8000"
    body = ""
    for _ in range(50):
        try:
            body = await asyncio.to_thread(get, f"http://127.0.0.1:{port}/hello.txt")
            break
        except OSError:
            await asyncio.sleep(0.2)
    assert body == f"hello from {kind}\n"
    again = await apply_manifest(engine, load_manifest(out))
    assert again.outcomes == []
