"""The daemon's wiring is built once, in dependency order: each part gets what it needs
through its constructor (nothing is bound onto it afterwards)."""

from __future__ import annotations

from pathlib import Path

from shipmate import config
from shipmate.daemon.wiring import build
from shipmate.testing.engine import FakeEngine
from shipmate.testing.store import memory_store


async def test_everything_on(tmp_path: Path) -> None:
    store = await memory_store()
    engine = FakeEngine()
    cfg = config.load({}, state_dir=tmp_path, api_port=7000, cache_port=0, ssh=True)
    w = build(cfg, store, engine)
    assert [c.name for c in w.components] == [
        "compactor", "agent", "scheduler", "images", "ssh", "router", "router-log", "cache",
        "letsencrypt", "service-backups"]
    # the agent's containers fetch missing images through the peer fetcher built before it
    assert w.agent.containers is not None and w.agent.containers.fetcher is w.images
    # deploys wait for this machine's router, built before the PaaS
    assert w.router is not None and w.paas.deployer.router is w.router
    # at shutdown nginx is stopped, and this daemon's cache port leaves the build fence
    assert w.cache is not None and len(w.closers) == 2
    assert w.closers[1].__qualname__ == "BuildSandbox.remove"
    await store.close()


async def test_only_what_the_settings_ask_for(tmp_path: Path) -> None:
    store = await memory_store()
    cfg = config.load({}, state_dir=tmp_path, router=False, cache=False, ssh=False)
    w = build(cfg, store, None, "no Docker engine")
    assert [c.name for c in w.components] == ["compactor", "agent", "scheduler",
                                                "letsencrypt"]
    assert (w.router, w.cache, w.images, w.agent.containers) == (None, None, None, None)
    assert w.paas.deployer.router is None and w.closers == ()
    assert w.engine_error == "no Docker engine"
    await store.close()
