"""Builds use the package cache by themselves: the PaaS builders get ``build_settings`` as build
arguments, npm and pip inside ``docker build`` fetch through the cache (real PyPI and npm behind
it), and a second build with the same dependency manifest reuses the dependency layer."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shipmate import config
from shipmate.cache import build_settings
from shipmate.cache.server import CacheServer
from shipmate.engine.docker import DockerEngine
from shipmate.paas.build import build
from tests.conftest import ensure_images

pytestmark = pytest.mark.integration


def tree(files: dict[str, str]) -> bytes:
    """A pushed tree, as ``git archive`` would give it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture(scope="module")
def images(docker_host: str) -> str:
    ensure_images(docker_host)
    return docker_host


@pytest.fixture
async def cache(tmp_path: Path) -> AsyncIterator[CacheServer]:
    # builds run with network_mode=host, so the cache on loopback is reachable from RUN steps
    server = CacheServer(config.load(environ={}, state_dir=tmp_path, cache_port=0,
                                     cache_bind="127.0.0.1"))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def build_twice(docker_host: str, cache: CacheServer, app: str,
                      first: dict[str, str], second: dict[str, str]) -> tuple[list[str], str]:
    """Build ``first`` then ``second`` through the cache; the second build's output and the
    cache's stats after the first one."""
    engine = DockerEngine(docker_host)
    args = build_settings("127.0.0.1", cache.port)
    try:
        one: list[str] = []
        await build(engine, app, "a" * 40, tree(first), one.append, buildargs=args,
                    network="host")
        stats = json.dumps(cache.snapshot()["formats"])
        two: list[str] = []
        await build(engine, app, "b" * 40, tree(second), two.append, buildargs=args,
                    network="host")
        return two, stats
    finally:
        await engine.close()


def step_used_cache(lines: list[str], marker: str) -> bool:
    """Whether the build step whose instruction contains ``marker`` said 'Using cache'."""
    for i, line in enumerate(lines):
        if "Step " in line and marker in line:
            return any("Using cache" in x for x in lines[i + 1:i + 3])
    raise AssertionError(f"no build step with {marker!r} in:\n" + "\n".join(lines))


async def test_node_build_installs_through_the_cache(images: str, cache: CacheServer) -> None:
    # a unique manifest: the first build cannot reuse a layer from an earlier run
    manifest = json.dumps({"name": f"t-{uuid.uuid4().hex[:8]}", "version": "1.0.0",
                           "dependencies": {"is-number": "7.0.0"},
                           "scripts": {"start": "node index.js"}})
    code = {"package.json": manifest, "index.js": "console.log(require('is-number')(1))\n"}
    lines, stats = await build_twice(images, cache, f"cachenode-{uuid.uuid4().hex[:6]}", code,
                                     {**code, "index.js": "console.log('v2')\n"})
    npm = json.loads(stats)["npm"]
    assert npm["misses"] >= 2, stats  # the package document and the tarball
    assert npm["bytes_from_upstream"] > 0 and npm["errors"] == 0, stats
    assert step_used_cache(lines, "npm install")


async def test_python_build_installs_through_the_cache(images: str,
                                                       cache: CacheServer) -> None:
    requirements = f"# build {uuid.uuid4().hex}\nsix==1.16.0\n"
    code = {"requirements.txt": requirements, "app.py": "import six\nprint(six.PY3)\n",
            "Procfile": "web: python3 app.py\n"}
    lines, stats = await build_twice(images, cache, f"cachepy-{uuid.uuid4().hex[:6]}", code,
                                     {**code, "app.py": "print('v2')\n"})
    pypi = json.loads(stats)["pypi"]
    assert pypi["misses"] >= 2, stats  # the simple page and the wheel
    assert pypi["bytes_from_upstream"] > 0 and pypi["errors"] == 0, stats
    assert step_used_cache(lines, "pip install")
