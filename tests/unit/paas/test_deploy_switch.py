"""The switch waits for this machine's router before old instances retire."""

import asyncio
import dataclasses
from pathlib import Path

import pytest

import shipmate.paas.deploy as deploy_module
from shipmate import config
from shipmate.paas.deploy import Deployer
from shipmate.paas.model import Release
from shipmate.paas.state import PaasState
from shipmate.router import keys as route_keys
from shipmate.scheduler.registry import Registry
from shipmate.testing.store import memory_store


@dataclasses.dataclass
class Router:
    revision: int = 0


async def _deployer(tmp_path: Path) -> Deployer:
    store = await memory_store()
    cfg = config.load({}, state_dir=tmp_path)
    return Deployer(store, None, cfg, PaasState(store), Registry(store))


async def test_without_a_local_router_there_is_nothing_to_wait_for(tmp_path: Path) -> None:
    deployer = await _deployer(tmp_path)
    assert await deployer._wait_routed(10**6, 0.0) is True


async def test_waits_until_the_router_has_made_the_revision_live(tmp_path: Path) -> None:
    deployer = await _deployer(tmp_path)
    router = Router(revision=5)
    deployer.router = router

    async def later() -> None:
        await asyncio.sleep(0.1)
        router.revision = 7

    bump = asyncio.create_task(later())
    assert await deployer._wait_routed(7, 5.0) is True
    await bump
    assert await deployer._wait_routed(8, 0.1) is False


async def test_old_instances_are_destroyed_only_after_the_router_switched(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deployer = await _deployer(tmp_path)
    router = Router(revision=1)
    deployer.router = router
    destroyed: list[list[str]] = []

    async def destroy(names: list[str]) -> None:
        destroyed.append(names)

    monkeypatch.setattr(deployer, "_destroy", destroy)
    monkeypatch.setattr(deploy_module, "DRAIN_SECONDS", 0.05)
    retire = asyncio.create_task(deployer._retire(["old.container"], 3, live=False))
    await asyncio.sleep(0.3)
    assert destroyed == []  # the router is still on revision 1
    router.revision = 3
    await asyncio.wait_for(retire, 5)
    assert destroyed == [["old.container"]]


async def test_switch_waits_for_its_own_revision_not_for_later_unrelated_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deployer = await _deployer(tmp_path)
    store = deployer.store
    await deployer.state.create_app("web-app")
    await deployer.state.set_global_domain("apps.test")
    router = Router()
    deployer.router = router
    monkeypatch.setattr(deploy_module, "ROUTE_TIMEOUT", 1.0)

    async def fake_router() -> None:
        # Reads the switch once, then the store moves on with writes a router ignores.
        while True:
            active = await store.get(route_keys.active_key("web-app"))
            route = await store.get(route_keys.domains_key("web-app"))
            if active and route:
                router.revision = max(active.mod_revision, route.mod_revision)
                await store.put("/shipmate/unrelated", "x")
                return
            await asyncio.sleep(0.005)

    follower = asyncio.create_task(fake_router())
    lines: list[str] = []
    release = Release(1, "sha256:img", {}, {"web": 1}, {"web": ""}, "a" * 40, 0.0)
    await deployer._switch("web-app", release, "v1-abcd", lines.append)
    await follower
    assert await store.revision() > router.revision
    assert not any("has not taken the switch" in line for line in lines), lines
    assert lines[-1].startswith("-----> Switched traffic to v1")
