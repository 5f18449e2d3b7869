"""A deploy retires old instances only once every live router (not only this machine's) has
made the switch live, and after a bounded wait if one never does (memory store)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import shipmate.paas.deploy as deploy_module
from shipmate import config
from shipmate.paas.deploy import Deployer
from shipmate.paas.model import Release
from shipmate.paas.state import PaasState
from shipmate.router.progress import ProgressWriter
from shipmate.scheduler.registry import Registry, machine_key
from shipmate.store.base import Store
from shipmate.testing.store import memory_store

RELEASE = Release(2, "sha256:img", {}, {"web": 1}, {"web": ""}, "a" * 40, 0.0)


async def _setup(tmp_path: Path) -> tuple[Deployer, dict[str, ProgressWriter]]:
    store = await memory_store()
    deployer = Deployer(store, None, config.load({}, state_dir=tmp_path), PaasState(store),
                        Registry(store))
    await deployer.state.create_app("web-app")
    await deployer.state.set_global_domain("apps.test")
    writers = {}
    for name in ("m1", "m2", "m3"):
        lease = await store.grant(30)
        await store.put(machine_key(name), json.dumps({"id": name}), lease=lease)
        writers[name] = ProgressWriter(store, name)
        await writers[name].record(await store.revision())
    return deployer, writers


def _watch_destroy(deployer: Deployer, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    destroyed: list[list[str]] = []

    async def destroy(names: list[str]) -> None:
        destroyed.append(names)

    monkeypatch.setattr(deployer, "_destroy", destroy)
    monkeypatch.setattr(deploy_module, "DRAIN_SECONDS", 0.05)
    return destroyed


async def _follow(store: Store, writers: dict[str, ProgressWriter]) -> None:
    """Routers that record whatever the store holds now, until cancelled."""
    while True:
        for w in writers.values():
            await w.record(await store.revision())
        await asyncio.sleep(0.02)


async def test_old_instances_wait_for_every_live_router(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deployer, writers = await _setup(tmp_path)
    destroyed = _watch_destroy(deployer, monkeypatch)
    await deployer.registry.submit("web-app_web.1_v1-0000.container", "[Container]\nImage=x\n")
    fast = asyncio.create_task(_follow(deployer.store, {"m1": writers["m1"]}))
    lines: list[str] = []
    monkeypatch.setattr(deploy_module, "ROUTE_TIMEOUT", 0.5)
    switch = asyncio.create_task(deployer._switch("web-app", RELEASE, "v2-abcd", lines.append))
    await asyncio.sleep(0.3)
    assert not switch.done() and destroyed == []  # m2 and m3 have not taken the switch
    slow = asyncio.create_task(_follow(deployer.store, writers))
    await asyncio.wait_for(switch, 5)
    assert not any("has not taken the switch" in line for line in lines), lines
    for _ in range(100):
        if destroyed:
            break
        await asyncio.sleep(0.02)
    assert destroyed == [["web-app_web.1_v1-0000.container"]]
    fast.cancel()
    slow.cancel()


async def test_a_router_that_never_catches_up_delays_retirement_only_so_long(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deployer, writers = await _setup(tmp_path)
    destroyed = _watch_destroy(deployer, monkeypatch)
    await deployer.registry.submit("web-app_web.1_v1-0000.container", "[Container]\nImage=x\n")
    monkeypatch.setattr(deploy_module, "ROUTE_TIMEOUT", 0.3)
    others = asyncio.create_task(_follow(deployer.store, {n: writers[n] for n in ("m1", "m2")}))
    lines: list[str] = []
    await asyncio.wait_for(deployer._switch("web-app", RELEASE, "v2-abcd", lines.append), 5)
    assert any("The router of m3 has not taken the switch" in line for line in lines), lines
    assert destroyed == []
    for _ in range(100):  # the second bounded wait, then the drain
        if destroyed:
            break
        await asyncio.sleep(0.02)
    assert destroyed == [["web-app_web.1_v1-0000.container"]]
    others.cancel()
