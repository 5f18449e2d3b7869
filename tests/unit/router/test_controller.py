"""The router controller against the in-memory store, with a fake clock and a fake nginx."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from shipmate.errors import StoreError
from shipmate.router import keys
from shipmate.router.controller import RouterController
from shipmate.store.base import Store
from shipmate.testing import FakeClock
from shipmate.testing.store import memory_store
from tests.unit.router.fakes import FakeProxy, WatchedClock


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait (real time, bounded) until ``cond()`` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def settle() -> None:
    """Let store callbacks and the controller's tasks run (real time, short)."""
    await asyncio.sleep(0.05)


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    s = await memory_store()
    yield s
    await s.close()


async def put_app(store: Store, app: str = "web", *ports: int) -> None:
    await store.put(keys.domains_key(app), keys.encode_domains([f"{app}.test"]))
    await store.put(keys.active_key(app), keys.encode_active("v1"))
    for i, port in enumerate(ports):
        await store.put(keys.endpoint_key(app, "web", str(i + 1)),
                        keys.encode_endpoint("127.0.0.1", port, release="v1"))


class Running:
    def __init__(self, controller: RouterController) -> None:
        self.controller = controller
        self.task = asyncio.create_task(controller.run())

    async def stop(self) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


async def debounced(clock: WatchedClock) -> None:
    """Wait until the controller sleeps out its debounce (beside its periodic tick), then
    let the debounce pass."""
    await until(lambda: clock.sleeping >= 2)
    await clock.advance(0.05)


async def quiesce(clock: WatchedClock) -> None:
    """Let every pending debounced pass run, until the controller only waits for its tick."""
    for _ in range(50):
        await settle()
        if clock.sleeping < 2:
            return
        await clock.advance(0.05)
    raise AssertionError("the controller never went idle")


@pytest.fixture
async def running(store: Store) -> AsyncIterator[tuple[Running, FakeProxy, WatchedClock]]:
    proxy, clock = FakeProxy(), WatchedClock()
    run = Running(RouterController(store, proxy, clock=clock, interval=5.0, debounce=0.05))
    yield run, proxy, clock
    await run.stop()


async def test_first_pass_renders_what_is_in_the_store(store: Store) -> None:
    await put_app(store, "web", 5001, 5002)
    proxy = FakeProxy()
    controller = RouterController(store, proxy, clock=FakeClock())
    assert await controller.sync() is True
    assert proxy.live is not None
    assert "server 127.0.0.1:5001 " in proxy.live and "server 127.0.0.1:5002 " in proxy.live
    assert "server_name web.test;" in proxy.live
    assert controller.reloads == 1
    assert controller.revision == await store.revision()
    assert await controller.sync() is False  # nothing changed: no reload
    assert controller.reloads == 1


async def test_change_is_applied_after_the_debounce(running: tuple) -> None:
    run, proxy, clock = running
    await until(lambda: len(proxy.applied) == 1)  # the first full pass
    store = run.controller._store
    await put_app(store, "web", 5001, 5002, 5003)  # a burst of writes...
    burst = await store.revision()
    await until(lambda: clock.sleeping >= 2)  # asleep in the debounce: fake time stands still
    assert len(proxy.applied) == 1  # ...waits for the debounce...
    await clock.advance(0.05)
    await until(lambda: run.controller.revision >= burst)  # a pass read the whole burst
    assert len(proxy.applied) == 2  # ...and becomes one pass
    assert all(f"127.0.0.1:{p} " in proxy.applied[-1] for p in (5001, 5002, 5003))


async def test_removed_endpoint_disappears(running: tuple) -> None:
    run, proxy, clock = running
    store = run.controller._store
    await put_app(store, "web", 5001, 5002)
    await debounced(clock)
    await until(lambda: proxy.live is not None and "5002" in proxy.live)
    await store.delete(keys.endpoint_key("web", "web", "2"))
    await debounced(clock)
    await until(lambda: proxy.live is not None and "5002" not in proxy.live)
    assert "127.0.0.1:5001 " in proxy.live


async def test_expired_lease_drops_the_endpoints() -> None:
    clock = FakeClock()
    store = await memory_store(clock=clock)
    try:
        await put_app(store, "web", 5001)
        lease = await store.grant(3.0)
        await store.put(keys.endpoint_key("web", "web", "9"),
                        keys.encode_endpoint("127.0.0.1", 5009, release="v1"), lease=lease)
        proxy = FakeProxy()
        run = Running(RouterController(store, proxy, clock=clock, debounce=0.0))
        await until(lambda: proxy.live is not None and "5009" in proxy.live)
        await clock.advance(4.0)  # the machine's lease runs out
        await until(lambda: proxy.live is not None and "5009" not in proxy.live)
        assert "5001" in proxy.live
        await run.stop()
    finally:
        await store.close()


async def test_refused_config_keeps_the_old_one_and_is_retried(running: tuple) -> None:
    run, proxy, clock = running
    await until(lambda: len(proxy.applied) == 1)
    proxy.refuse = "nginx said no"
    await put_app(run.controller._store, "web", 5001)
    await debounced(clock)
    await until(lambda: run.controller.last_error is not None)
    await quiesce(clock)
    assert "nginx said no" in str(run.controller.last_error)
    assert len(proxy.applied) == 1
    assert not run.task.done()  # the controller carries on
    proxy.refuse = None
    await clock.advance(5.0)  # the periodic pass tries again (its debounce may end in it)
    await quiesce(clock)
    await until(lambda: len(proxy.applied) == 2)
    assert "5001" in proxy.applied[-1]
    assert run.controller.last_error is None


async def test_problems_do_not_stop_routing(store: Store) -> None:
    await put_app(store, "web", 5001)
    await store.put("/shipmate/routes/domains/evil", '{"domains": ["x.test; include /etc/x"]}')
    await store.put("/shipmate/endpoints/web/web/bad", '{"host": "127.0.0.1\\n", "port": 1}')
    proxy = FakeProxy()
    controller = RouterController(store, proxy, clock=FakeClock())
    await controller.sync()
    assert proxy.live is not None and "127.0.0.1:5001 " in proxy.live
    assert "include /etc/x" not in proxy.live
    assert controller.state is not None and len(controller.state.problems) == 3


async def test_default_global_domain(store: Store) -> None:
    await put_app(store, "web", 5001)
    proxy = FakeProxy()
    await RouterController(store, proxy, global_domain="apps.test").sync()
    assert proxy.live is not None and "server_name web.apps.test web.test;" in proxy.live


class FlakyStore:
    """Delegates to a real store, but its first ``failures`` transactions fail."""

    def __init__(self, inner: Store, failures: int) -> None:
        self._inner = inner
        self.failures = failures

    async def txn(self, *args: object, **kwargs: object) -> object:
        if self.failures > 0:
            self.failures -= 1
            raise StoreError("store is down")
        return await self._inner.txn(*args, **kwargs)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


async def test_store_failure_is_retried(store: Store) -> None:
    await put_app(store, "web", 5001)
    flaky, proxy, clock = FlakyStore(store, failures=2), FakeProxy(), WatchedClock()
    run = Running(RouterController(flaky, proxy, clock=clock, retry=1.0))  # type: ignore[arg-type]
    await until(lambda: flaky.failures == 1 and clock.sleeping == 1)  # waits to retry
    assert isinstance(run.controller.last_error, StoreError)
    await clock.advance(1.0)
    await until(lambda: flaky.failures == 0 and clock.sleeping == 1)
    await clock.advance(1.0)
    await until(lambda: proxy.live is not None and "5001" in proxy.live)
    assert not run.task.done()
    await run.stop()
