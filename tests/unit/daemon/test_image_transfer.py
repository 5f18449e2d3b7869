"""Image transfer between machines: the TCP image route and the fetcher, with fake engines
and an in-memory store (the route is served for real on loopback)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from shipmate import config as config_mod
from shipmate.agent.containers import ContainerUnits
from shipmate.daemon.image_transfer import PeerImages, image_app
from shipmate.errors import EngineError
from shipmate.scheduler.model import Machine
from shipmate.scheduler.registry import Registry
from shipmate.spec.container import make_spec
from shipmate.store.base import Store
from shipmate.testing.engine import FakeEngine
from shipmate.testing.store import memory_store

APP_IMAGE = "shipmate/app-web:0123abcd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    s = await memory_store()
    yield s
    await s.close()


@pytest.fixture
def builder() -> FakeEngine:
    engine = FakeEngine()
    engine.add_image(APP_IMAGE, {"shipmate.app": "web"})
    engine.add_image("shipmate/base:bookworm")  # not an app image: never served
    return engine


async def _serve(engine: FakeEngine, port: int, clients: str) -> web.AppRunner:
    runner = web.AppRunner(image_app(engine, clients))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def _fetcher(store: Store, engine: FakeEngine, port: int, *machines: str) -> PeerImages:
    registry = Registry(store)
    lease = await store.grant(30)
    for m in machines:
        await registry.register_machine(Machine(m, "127.0.0.1"), lease)
    cfg = config_mod.load({}, machine_id="node-2", api_port=port, image_pull_timeout=10.0)
    return PeerImages(store, engine, cfg)


async def test_a_missing_app_image_comes_from_the_builder(store: Store,
                                                          builder: FakeEngine) -> None:
    port = _free_port()
    runner = await _serve(builder, port, "127.0.0.0/8")
    try:
        here = FakeEngine()
        fetcher = await _fetcher(store, here, port, "node-1", "node-2")
        steps: list[str] = []
        await fetcher.fetch(APP_IMAGE, {"shipmate.image-source": "node-1"}, steps.append)
        assert await here.image(APP_IMAGE) is not None
        assert any("from node-1" in s for s in steps)
    finally:
        await runner.cleanup()


async def test_refusals_fail_with_the_reason(store: Store, builder: FakeEngine) -> None:
    port = _free_port()
    runner = await _serve(builder, port, "10.0.0.0/8")  # loopback is not a client
    try:
        fetcher = await _fetcher(store, FakeEngine(), port, "node-1")
        with pytest.raises(EngineError, match=r"node-1: HTTP 403 client 127\.0\.0\.1 is not"):
            await fetcher.fetch(APP_IMAGE, {}, lambda _s: None)
    finally:
        await runner.cleanup()
    runner = await _serve(builder, port, "127.0.0.0/8")
    try:
        fetcher = await _fetcher(store, FakeEngine(), port, "node-1")
        with pytest.raises(EngineError, match="not a Shipmate app image"):
            await fetcher.fetch("shipmate/base:bookworm", {}, lambda _s: None)
        with pytest.raises(EngineError, match="HTTP 404 no image"):
            await fetcher.fetch("shipmate/app-web:other", {}, lambda _s: None)
    finally:
        await runner.cleanup()


async def test_no_peer_fails_clearly(store: Store) -> None:
    fetcher = await _fetcher(store, FakeEngine(), _free_port(), "node-2")  # only itself
    with pytest.raises(EngineError, match="no other machine can send it"):
        await fetcher.fetch(APP_IMAGE, {}, lambda _s: None)


class _SlowFetcher:
    """Records what the unit looks like while its image is on its way."""

    def __init__(self, engine: FakeEngine, units: list[ContainerUnits], fail: bool) -> None:
        self.engine, self.units, self.fail = engine, units, fail
        self.seen: list[tuple[str, str, str]] = []

    async def fetch(self, ref: str, labels: object, progress: object) -> None:
        assert callable(progress)
        progress("halfway")
        st = self.units[0].status("web.container")
        assert st is not None
        self.seen.append((st.active, st.sub, st.result))
        if self.fail:
            raise EngineError("node-1: HTTP 404 no image")
        self.engine.add_image(ref, {"shipmate.app": "web"})


@pytest.mark.parametrize("fail", [False, True])
async def test_a_unit_waits_for_its_image_then_runs_or_fails(fail: bool) -> None:
    engine = FakeEngine()
    units: list[ContainerUnits] = []
    fetcher = _SlowFetcher(engine, units, fail)
    units.append(ContainerUnits(engine, "node-2", fetcher=fetcher))
    spec = make_spec("web", APP_IMAGE)
    if fail:
        with pytest.raises(EngineError, match="404"):
            await units[0].start("web.container", spec)
        assert units[0].status("web.container") is None
        assert engine.containers == {}
    else:
        status = await units[0].start("web.container", spec)
        assert (status.active, status.sub) == ("active", "running")
    assert fetcher.seen == [("activating", "start-pre", "halfway")]
