"""Real clients through the cache: apt-get in shipmate/base containers (on the docker bridge),
pip and npm on the host, an HTTPS request through a CONNECT tunnel. These reach the real
package mirrors through the cache, as builds do."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from shipmate import config
from shipmate.cache.server import CacheServer
from tests.conftest import free_port

pytestmark = pytest.mark.integration

BASE_IMAGE = "shipmate/base:bookworm"
PACKAGES = ["hello", "curl", "jq"]


async def run(*argv: str, env: dict[str, str] | None = None, cwd: Path | None = None,
              timeout: float = 300) -> str:
    """Run a command without blocking the loop the cache serves on; its output, or fail."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
        cwd=cwd)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"{argv[:3]} failed ({proc.returncode}):\n{text[-3000:]}"
    return text


@pytest.fixture
async def cache(tmp_path: Path) -> AsyncIterator[CacheServer]:
    server = CacheServer(config.load(environ={}, state_dir=tmp_path, cache_port=free_port(),
                                     cache_bind="0.0.0.0"))
    await server.start()
    yield server
    await server.stop()


def totals(cache: CacheServer, fmt: str) -> dict[str, Any]:
    return dict(cache.snapshot()["formats"][fmt])


async def bridge_gateway() -> str:
    out = await run("docker", "network", "inspect", "bridge", "--format",
                    "{{range .IPAM.Config}}{{.Gateway}}{{end}}")
    return out.strip() or "172.17.0.1"


async def require_image(image: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "docker", "image", "inspect", image, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    if await proc.wait() != 0:
        pytest.fail(f"image {image} is missing: build it with `shipmate images:bootstrap` "
                    "(this test needs it; it does not skip)")


async def apt_in_container(gateway: str, port: int) -> str:
    script = (f'echo "Acquire::http::Proxy \\"http://{gateway}:{port}\\";" '
              "> /etc/apt/apt.conf.d/01proxy && apt-get update -q && "
              f"apt-get install -y -q --no-install-recommends {' '.join(PACKAGES)} && "
              "hello && jq --version")
    return await run("docker", "run", "--rm", BASE_IMAGE, "sh", "-c", script, timeout=600)


@pytest.mark.slow
async def test_apt_get_in_containers_second_served_from_cache(cache: CacheServer) -> None:
    await require_image(BASE_IMAGE)
    gateway = await bridge_gateway()
    out = await apt_in_container(gateway, cache.port)
    assert "Hello, world!" in out
    first = totals(cache, "apt")
    assert first["misses"] > 5 and first["bytes_from_upstream"] > 1_000_000
    assert cache.snapshot()["verified"] > 5  # by-hash indexes and .debs checked by SHA256
    assert cache.snapshot()["verify_failures"] == 0
    out = await apt_in_container(gateway, cache.port)
    assert "Hello, world!" in out
    second = totals(cache, "apt")
    assert second["hits"] - first["hits"] >= first["misses"]
    assert second["bytes_from_upstream"] - first["bytes_from_upstream"] < 10_000
    assert second["upstream_fetches"] == first["upstream_fetches"]


@pytest.mark.slow
async def test_apt_get_source_files_are_checked_against_sources(cache: CacheServer) -> None:
    await require_image(BASE_IMAGE)
    gateway = await bridge_gateway()
    setup = (f'echo "Acquire::http::Proxy \\"http://{gateway}:{cache.port}\\";" '
             "> /etc/apt/apt.conf.d/01proxy && "
             "echo 'deb-src http://deb.debian.org/debian bookworm main' "
             "> /etc/apt/sources.list.d/src.list && apt-get update -q")
    await run("docker", "run", "--rm", BASE_IMAGE, "sh", "-c", setup, timeout=600)
    before = cache.snapshot()["verified"]
    out = await run("docker", "run", "--rm", BASE_IMAGE, "sh", "-c",
                    setup + " && cd /tmp && apt-get source -q --download-only hello && ls",
                    timeout=600)
    assert ".dsc" in out and ".orig.tar" in out
    files = [e for e in cache.storage.entries() if "/pool/main/h/hello/" in e.url]
    assert len(files) >= 3  # the .dsc, the upstream tarball, the Debian tarball
    # the indexes were hits the second time: every new check is of a source file, against
    # the SHA256 the Sources index gave for it
    assert cache.snapshot()["verified"] - before == len(files)
    assert cache.snapshot()["verify_failures"] == 0


def pip_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # no site mirrors or find-links: only the cache
    return env


async def test_pip_download_through_mirror(cache: CacheServer, tmp_path: Path) -> None:
    pip = shutil.which("pip") or shutil.which("pip3")
    assert pip, "pip is not installed on this host"
    index = f"http://127.0.0.1:{cache.port}/pypi/simple/"
    for n in (1, 2):
        dest = tmp_path / f"dl{n}"
        await run(pip, "--isolated", "download", "--no-cache-dir", "--disable-pip-version-check",
                  "-d", str(dest), "--index-url", index, "requests==2.32.3", env=pip_env())
        wheels = sorted(p.name for p in dest.iterdir())
        assert any(w.startswith("requests-2.32.3") for w in wheels) and len(wheels) >= 4
        if n == 1:
            first = totals(cache, "pypi")
            assert first["misses"] >= 5 and cache.snapshot()["verified"] >= 4
    second = totals(cache, "pypi")
    assert second["hits"] - first["hits"] >= len(wheels)
    assert second["bytes_from_upstream"] == first["bytes_from_upstream"]


async def test_npm_install_through_mirror(cache: CacheServer, tmp_path: Path) -> None:
    npm = shutil.which("npm")
    assert npm, "npm is not installed on this host"
    registry = f"http://127.0.0.1:{cache.port}/npm/"
    for n in (1, 2):
        project = tmp_path / f"p{n}"
        project.mkdir()
        (project / "package.json").write_text(json.dumps({"name": f"p{n}", "version": "1.0.0"}))
        await run(npm, "install", "--registry", registry, "--cache", str(tmp_path / f"c{n}"),
                  "--no-audit", "--no-fund", "left-pad@1.3.0", "is-number@7.0.0", cwd=project)
        assert (project / "node_modules" / "left-pad" / "package.json").exists()
        if n == 1:
            first = totals(cache, "npm")
            assert first["misses"] >= 4
            assert cache.snapshot()["verified"] >= 2  # tarballs checked against dist.integrity
    second = totals(cache, "npm")
    assert second["hits"] - first["hits"] >= 4
    assert second["bytes_from_upstream"] == first["bytes_from_upstream"]


async def test_https_through_connect_tunnel(cache: CacheServer) -> None:
    async with aiohttp.ClientSession() as session, session.get(
            "https://pypi.org/simple/six/", proxy=f"http://127.0.0.1:{cache.port}") as resp:
        assert resp.status == 200
        assert b"six-1.16.0" in await resp.read()
    assert cache.storage.entries() == []  # tunnels are never cached
