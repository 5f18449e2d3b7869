"""Image transfer between machines: the TCP image route served for real on loopback, and the
fetcher against it (fake engines, in-memory store)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from shipmate import config as config_mod
from shipmate.daemon.image_transfer import PeerImages, image_app
from shipmate.errors import EngineError
from shipmate.scheduler.model import Machine
from shipmate.scheduler.registry import Registry
from shipmate.store.base import Store
from shipmate.testing.engine import FakeEngine
from shipmate.testing.store import memory_store
from tests.conftest import free_port

pytestmark = pytest.mark.integration
APP_IMAGE = "shipmate/app-web:0123abcd"


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
    port = free_port()
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
    port = free_port()
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
