"""The deploy, health-check and build metrics are observed on the real paths: a deploy whose
instances an (in-test) agent reports running counts one ``ok`` deploy and health check for its
app; one whose instances fail counts a ``failed`` deploy; a push's build is timed with its
outcome."""

from __future__ import annotations

import asyncio
import contextlib
import io
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shipmate import config, metrics
from shipmate.errors import ShipmateError
from shipmate.paas.deploy import DeployError
from shipmate.paas.model import Release
from shipmate.paas.service import Paas
from shipmate.paas.units import parse_unit_name
from shipmate.router import keys as route_keys
from shipmate.scheduler.model import UnitState
from shipmate.testing import FakeEngine
from shipmate.testing.store import memory_store


@contextlib.asynccontextmanager
async def _agent(paas: Paas, app: str, state: str) -> AsyncIterator[None]:
    """Stands in for the agent: reports every unit of ``app`` in ``state``, with a web
    endpoint of its release."""
    store, registry = paas.store, paas.deployer.registry
    lease = await store.grant(60)

    async def run() -> None:
        while True:
            for name in await registry.units():
                parsed = parse_unit_name(name)
                if parsed is None or parsed[0] != app:
                    continue
                await registry.report_state(UnitState(name, "m1", active_state=state,
                                                      sub_state="running"), lease)
                if parsed[1] == "web":
                    await store.put(route_keys.endpoint_key(app, "web", f"{parsed[2]}"),
                                    route_keys.encode_endpoint("127.0.0.1", 5000,
                                                               release=parsed[3],
                                                               machine="m1"))
            await asyncio.sleep(0.01)

    task = asyncio.create_task(run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for retiring in list(paas.deployer._retiring):
            retiring.cancel()


async def _paas(tmp_path: Path, app: str) -> Paas:
    paas = Paas(await memory_store(), None, config.load({}, state_dir=tmp_path))
    await paas.state.create_app(app)
    await paas.state.set_checks(app, {"disabled": ["_all_"]})  # no HTTP from a unit test
    return paas


def _release(version: int) -> Release:
    return Release(version, "sha256:img", {}, {}, {"web": "serve"}, "a" * 40, 0.0)


def _deploys(app: str, outcome: str) -> int:
    return metrics.DEPLOY_SECONDS.count(app=app, outcome=outcome)


async def test_a_deploy_that_goes_live_counts_ok(tmp_path: Path) -> None:
    app = "metrics-ok"
    paas = await _paas(tmp_path, app)
    checks = metrics.HEALTH_CHECK_SECONDS.count(app=app, outcome="ok")
    async with _agent(paas, app, "active"):
        release = await asyncio.wait_for(
            paas.deployer.deploy(app, _release, lambda line: None), 20)
    assert release.version == 1
    assert (_deploys(app, "ok"), _deploys(app, "failed")) == (1, 0)
    assert metrics.HEALTH_CHECK_SECONDS.count(app=app, outcome="ok") == checks + 1
    assert f'shipmate_deploy_duration_seconds_count{{app="{app}",outcome="ok"}} 1' \
        in metrics.REGISTRY.render()
    await paas.store.close()


async def test_a_deploy_whose_instances_fail_counts_failed(tmp_path: Path) -> None:
    app = "metrics-failed"
    paas = await _paas(tmp_path, app)
    async with _agent(paas, app, "failed"):
        with pytest.raises(DeployError, match="failed to start"):
            await asyncio.wait_for(paas.deployer.deploy(app, _release, lambda line: None), 20)
    assert (_deploys(app, "ok"), _deploys(app, "failed")) == (0, 1)
    assert metrics.HEALTH_CHECK_SECONDS.count(app=app, outcome="failed") == 0  # not reached
    await paas.store.close()


def _tree(files: dict[str, str]) -> bytes:
    """A pushed tree as the git front door hands it over: a tar."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return out.getvalue()


async def test_a_push_times_its_build_then_its_deploy(tmp_path: Path) -> None:
    app = "metrics-push"
    paas = Paas(await memory_store(), FakeEngine(), config.load({}, state_dir=tmp_path))
    await paas.state.create_app(app)
    await paas.state.set_checks(app, {"disabled": ["_all_"]})
    tree = _tree({"Dockerfile": "FROM shipmate/base:bookworm\nCMD [\"serve\"]\n"})
    async with _agent(paas, app, "active"):
        await asyncio.wait_for(paas.push(app, "b" * 40, tree, lambda line: None), 20)
    assert metrics.BUILD_SECONDS.count(app=app, outcome="ok") == 1
    assert _deploys(app, "ok") == 1
    await paas.store.close()


async def test_a_failed_build_is_timed_as_failed(tmp_path: Path) -> None:
    app = "metrics-build"
    paas = Paas(await memory_store(), FakeEngine(), config.load({}, state_dir=tmp_path))
    await paas.state.create_app(app)
    with pytest.raises(ShipmateError):  # nothing in the tree says how to build it
        await paas.push(app, "b" * 40, _tree({"README": "hello\n"}), lambda line: None)
    assert metrics.BUILD_SECONDS.count(app=app, outcome="failed") == 1
    assert _deploys(app, "failed") == 0  # nothing was deployed
    await paas.store.close()
