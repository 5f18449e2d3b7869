"""Image transfer between machines without the network: the fetcher's refusals that need no
peer, and a unit waiting for its image (fake engines, in-memory store). The TCP image route is
served for real in tests/integration/test_image_transfer.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shipmate import config as config_mod
from shipmate.agent.containers import ContainerUnits
from shipmate.daemon.image_transfer import PeerImages
from shipmate.errors import EngineError
from shipmate.scheduler.model import Machine
from shipmate.scheduler.registry import Registry
from shipmate.spec.container import make_spec
from shipmate.store.base import Store
from shipmate.testing.engine import FakeEngine
from shipmate.testing.store import memory_store

APP_IMAGE = "shipmate/app-web:0123abcd"


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    s = await memory_store()
    yield s
    await s.close()


async def test_no_peer_fails_clearly(store: Store) -> None:
    registry = Registry(store)
    await registry.register_machine(Machine("node-2", "127.0.0.1"), await store.grant(30))
    # Only itself is registered: no connection is ever tried (port 9 stays unused).
    cfg = config_mod.load({}, machine_id="node-2", api_port=9, image_pull_timeout=10.0)
    fetcher = PeerImages(store, FakeEngine(), cfg)
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


class _Transport:
    """What the TLS layer tells the route about the connection."""

    def __init__(self, peercert: dict[str, object] | None) -> None:
        self.extra = {"peername": ("172.30.0.12", 40000), "peercert": peercert}

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.extra.get(name, default)

    def is_closing(self) -> bool:
        return False


@pytest.mark.parametrize(("peercert", "status"), [(None, 403), ({}, 403),
                                                  ({"subject": ((("commonName", "n"),),)}, 404)])
async def test_with_mtls_the_image_route_wants_a_certificate_from_allowed_addresses(
        peercert: dict[str, object] | None, status: int) -> None:
    from aiohttp.test_utils import make_mocked_request

    from shipmate.daemon.image_transfer import _get_image, image_app

    app = image_app(FakeEngine(), "172.30.0.0/24", mtls=True)
    req = make_mocked_request("GET", f"/v1/images/{APP_IMAGE}", app=app,
                              match_info={"ref": APP_IMAGE}, transport=_Transport(peercert))
    resp = await _get_image(req)
    assert resp.status == status  # 404: past both fences, the fake engine has no such image
