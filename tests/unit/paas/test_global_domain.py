"""Clearing the global domain: every routed app is given a port of its own, and ``urls``
shows it."""

from pathlib import Path

from shipmate import config
from shipmate.paas.service import Paas
from shipmate.router import keys as route_keys
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
