"""The router's metrics: a pass that loads a new configuration counts one ok reload and its
time; one nginx refuses counts a failed one; a pass with nothing new counts nothing."""

from __future__ import annotations

from shipmate import metrics
from shipmate.router import keys
from shipmate.router.controller import RouterController
from shipmate.testing import FakeClock
from shipmate.testing.store import memory_store
from tests.unit.router.fakes import FakeProxy


def _counts() -> tuple[float, float, int]:
    return (metrics.ROUTER_RELOADS.value(outcome="ok"),
            metrics.ROUTER_RELOADS.value(outcome="failed"), metrics.ROUTER_RELOAD_SECONDS.count())


async def test_reloads_are_counted_by_outcome() -> None:
    async with await memory_store() as store:
        await store.put(keys.domains_key("web"), keys.encode_domains(["web.test"]))
        proxy = FakeProxy()
        controller = RouterController(store, proxy, clock=FakeClock())
        ok, failed, timed = _counts()
        assert await controller.sync() is True
        assert _counts() == (ok + 1, failed, timed + 1)
        assert await controller.sync() is False  # the same state: no reload, nothing counted
        assert _counts() == (ok + 1, failed, timed + 1)
        proxy.refuse = "nginx said no"
        await store.put(keys.domains_key("api"), keys.encode_domains(["api.test"]))
        assert await controller.sync() is False
        assert _counts() == (ok + 1, failed + 1, timed + 1)
