"""One app's routes nginx refuses are left out; every other app keeps being routed."""

from __future__ import annotations

from shipmate.errors import ValidationError
from shipmate.router import keys
from shipmate.router.controller import RouterController
from shipmate.router.render import names_hash_sizes
from shipmate.store.base import Store
from shipmate.testing.store import memory_store
from tests.unit.router.fakes import FakeProxy


async def _app(store: Store, app: str, domain: str, port: int, release: str = "v1") -> None:
    await store.put(keys.domains_key(app), keys.encode_domains([domain]))
    await store.put(keys.active_key(app), keys.encode_active(release))
    await store.put(keys.endpoint_key(app, "web", "1"),
                    keys.encode_endpoint("127.0.0.1", port, release=release))


async def test_a_refused_app_is_left_out_and_the_others_still_switch() -> None:
    store = await memory_store()
    proxy = FakeProxy()
    proxy.refuse_containing = "bad.test"
    controller = RouterController(store, proxy)
    await _app(store, "good", "good.test", 31001)
    await _app(store, "bad", "bad.test", 31002)
    assert await controller.sync() is True
    assert controller.last_error is None
    assert controller.excluded == {"bad": "nginx refuses bad.test"}
    assert proxy.live is not None and "good.test" in proxy.live and "bad.test" not in proxy.live
    assert controller.state is not None and [r.app for r in controller.state.routes] == ["good"]
    tested = len(proxy.checked)
    assert tested == 2  # each route once, on its own

    # Another app's deploy switch goes live; the refused app stays out.
    await _app(store, "good", "good.test", 31003, release="v2")
    assert await controller.sync() is True
    assert "127.0.0.1:31003" in proxy.live and "127.0.0.1:31001" not in proxy.live
    assert len(proxy.checked) == tested  # the config without it passed: nothing to test
    assert controller.revision == await store.revision()

    # Once the offending name is gone, the app is routed again.
    await store.put(keys.domains_key("bad"), keys.encode_domains(["fixed.test"]))
    assert await controller.sync() is True
    assert controller.excluded == {} and "fixed.test" in proxy.live


async def test_a_refusal_no_single_app_explains_keeps_the_old_config() -> None:
    store = await memory_store()
    proxy = FakeProxy()
    controller = RouterController(store, proxy)
    await _app(store, "one", "one.test", 31001)
    assert await controller.sync() is True
    before = proxy.live
    proxy.refuse = "port taken"
    await _app(store, "two", "two.test", 31002)
    assert await controller.sync() is False
    assert isinstance(controller.last_error, ValidationError)
    assert controller.excluded == {} and proxy.live == before


def test_hash_sizes_fit_the_longest_valid_name() -> None:
    assert names_hash_sizes([]) == (4096, 128)
    assert names_hash_sizes(["a" * 100]) == (4096, 128)  # 8 + 104 + 8 = 120
    assert names_hash_sizes(["a" * 190]) == (4096, 256)  # the name that froze routing
    assert names_hash_sizes(["a" * 253]) == (4096, 512)
    assert names_hash_sizes(["a.test"] * 5000)[0] == 32768
    assert names_hash_sizes(["a" * 190], 64) == (4096, 64)  # forced
