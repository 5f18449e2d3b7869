"""Clearing the global domain: every routed app is given a port of its own, and ``urls``
shows it. The ``global_domain`` setting applies while the store sets none, in ``urls``,
``ensure_routed`` and the router alike."""

from pathlib import Path

import pytest

from shipmate import config
from shipmate.errors import ConflictError
from shipmate.paas.service import Paas
from shipmate.router import keys as route_keys
from shipmate.router.routes import state_from_kvs
from shipmate.testing.store import memory_store


async def _paas(tmp_path: Path) -> Paas:
    store = await memory_store()
    return Paas(store, None, config.load({}, state_dir=tmp_path, public_ip="10.0.0.5"))


async def test_apps_routed_by_the_global_domain_get_a_port_when_it_is_cleared(
        tmp_path: Path) -> None:
    paas = await _paas(tmp_path)
    await paas.state.set_global_domain("apps.test")
    for app in ("api", "web", "idle"):
        await paas.state.create_app(app)
    for app in ("api", "web"):  # deployed: routed by APP.apps.test alone
        await paas.state.ensure_routed(app)
    await paas.state.set_domains("web", ["www.example.com"], None)
    assert await paas.urls("api") == ["http://api.apps.test"]

    given = await paas.state.clear_global_domain()

    assert set(given) == {"api", "web"} and len(set(given.values())) == 2
    assert await paas.urls("api") == [f"http://10.0.0.5:{given['api']}"]
    assert await paas.urls("web") == ["http://www.example.com",
                                      f"http://10.0.0.5:{given['web']}"]
    assert await paas.urls("idle") == []  # never deployed: its first deploy gives it one
    assert await paas.state.store.get(route_keys.GLOBAL_DOMAIN_KEY) is None
    report = await paas.domains_report("api")
    assert (report["global"], report["port"]) == ("", given["api"])


async def test_ports_are_stable_and_not_given_twice(tmp_path: Path) -> None:
    paas = await _paas(tmp_path)
    await paas.state.create_app("old")
    await paas.state.ensure_routed("old")  # deployed without a global domain: has a port
    old_port = (await paas.state.domains("old"))[1]
    await paas.state.set_global_domain("apps.test")
    await paas.state.create_app("new")
    await paas.state.ensure_routed("new")
    given = await paas.state.clear_global_domain()
    assert list(given) == ["new"] and given["new"] != old_port
    assert (await paas.state.domains("old"))[1] == old_port
    assert await paas.state.clear_global_domain() == {}  # cleared twice: nothing new


async def _routes(paas: Paas) -> dict[str, tuple[tuple[str, ...], int | None]]:
    """What the router of this machine serves, from the same store and settings."""
    kvs, _ = await paas.store.range("/shipmate/")
    state = state_from_kvs([(kv.key, kv.value) for kv in kvs],
                           default_global_domain=paas.config.global_domain)
    return {r.app: (r.domains, r.port) for r in state.routes}


async def test_the_global_domain_setting_applies_while_the_store_sets_none(
        tmp_path: Path) -> None:
    store = await memory_store()
    paas = Paas(store, None, config.load({}, state_dir=tmp_path, public_ip="10.0.0.5",
                                         global_domain="Apps.Setting.test"))
    await paas.state.create_app("api")
    await paas.state.ensure_routed("api")  # a deploy: no port, APP.DOMAIN is enough
    assert await paas.state.domains("api") == ([], None)
    assert await paas.urls("api") == ["http://api.apps.setting.test"]
    assert await _routes(paas) == {"api": (("api.apps.setting.test",), None)}
    assert (await paas.domains_report("api"))["global"] == "apps.setting.test"
    # its names are taken like those of domains:set-global
    await paas.state.create_app("web")
    with pytest.raises(ConflictError, match="belongs to app api"):
        await paas.state.change_domains("web", ["api.apps.setting.test"], [])

    # domains:set-global wins over the setting, in urls and in the router alike
    await paas.state.set_global_domain("store.test")
    assert await paas.urls("api") == ["http://api.store.test"]
    assert (await _routes(paas))["api"] == (("api.store.test",), None)
    # cleared: the setting applies again, so nobody needs a port
    assert await paas.state.clear_global_domain() == {}
    assert await paas.urls("api") == ["http://api.apps.setting.test"]
    assert (await _routes(paas))["api"] == (("api.apps.setting.test",), None)


async def test_an_invalid_setting_is_no_global_domain(tmp_path: Path) -> None:
    store = await memory_store()
    paas = Paas(store, None, config.load({}, state_dir=tmp_path, public_ip="10.0.0.5",
                                         global_domain="not a domain;"))
    await paas.state.create_app("api")
    await paas.state.ensure_routed("api")
    port = (await paas.state.domains("api"))[1]
    assert port is not None and await paas.urls("api") == [f"http://10.0.0.5:{port}"]
    assert await _routes(paas) == {"api": ((), port)}
