"""certs:* against a memory store: checked before anything is stored, keys never shown."""

from __future__ import annotations

import datetime as dt
import io
import json
import tarfile
from collections.abc import AsyncIterator

import pytest

from shipmate.errors import ConflictError, NotFoundError, ValidationError
from shipmate.paas.certs import Certs
from shipmate.paas.state import PaasState
from shipmate.router import tlskeys
from shipmate.router.tls import generate_self_signed
from shipmate.store.base import Store
from shipmate.testing.store import memory_store

NOW = dt.datetime(2026, 12, 4, 12, tzinfo=dt.UTC)


@pytest.fixture
async def certs() -> AsyncIterator[Certs]:
    store = await memory_store()
    state = PaasState(store)
    await state.set_global_domain("apps.test")
    await state.create_app("web")
    yield Certs(store, state, wall=lambda: NOW)
    await store.close()


async def _stored(store: Store) -> list[str]:
    kvs, _ = await store.range(tlskeys.TLS_PREFIX)
    return [kv.key for kv in kvs]


async def test_generate_stores_a_self_signed_pair_for_the_apps_names(certs: Certs) -> None:
    report = await certs.generate("web", [])
    assert report["hostnames"] == ["web.apps.test"] and report["verified"] == "self signed"
    assert report["source"] == "self-signed" and report["enabled"] is True
    assert "PRIVATE KEY" not in json.dumps(report)
    assert "PRIVATE KEY" in await certs.show("web", "key")
    assert (await certs.show("web", "crt")).startswith("-----BEGIN CERTIFICATE-----")


@pytest.mark.parametrize("bad", ["expired", "mismatch", "garbage", "other"])
async def test_a_refused_pair_stores_nothing(certs: Certs, bad: str) -> None:
    crt, key = generate_self_signed(["web.apps.test"], now=NOW)
    if bad == "expired":
        crt, key = generate_self_signed(["web.apps.test"], now=NOW - dt.timedelta(days=9),
                                        days=2)
    elif bad == "mismatch":
        key = generate_self_signed(["web.apps.test"], now=NOW)[1]
    elif bad == "garbage":
        crt = b"\x00garbage"
    else:
        crt, key = generate_self_signed(["elsewhere.test"], now=NOW)
    with pytest.raises(ValidationError):
        await certs.add("web", crt, key)
    assert await _stored(certs.store) == []
    assert (await certs.report("web"))["enabled"] is False


async def test_a_dokku_tar_is_read(certs: Certs) -> None:
    crt, key = generate_self_signed(["web.apps.test"], now=NOW)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("cert/server.crt", crt), ("cert/server.key", key)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    report = await certs.add_tar("web", buf.getvalue())
    assert report["source"] == "manual"
    with pytest.raises(ValidationError, match="not a tar"):
        await certs.add_tar("web", b"junk")


async def test_an_app_without_a_domain_gets_no_certificate() -> None:
    store = await memory_store()
    state = PaasState(store)
    await state.create_app("bare")
    with pytest.raises(ValidationError, match="has no domain"):
        await Certs(store, state, wall=lambda: NOW).generate("bare", [])
    await store.close()


async def test_hsts_remove_and_forget(certs: Certs) -> None:
    with pytest.raises(ValidationError):
        await certs.set_option("web", "hsts", "maybe")
    assert (await certs.set_option("web", "hsts", "true"))["hsts"] is True
    await certs.generate("web", ["web.apps.test"])
    await certs.remove("web")
    with pytest.raises(NotFoundError):
        await certs.remove("web")
    with pytest.raises(NotFoundError):
        await certs.show("web", "key")
    await certs.state.destroy_app("web")
    assert await _stored(certs.store) == []


async def test_the_dashboard_route_takes_a_certificate_without_an_app(certs: Certs) -> None:
    crt, key = generate_self_signed(["shipmate.apps.test"], now=NOW)
    report = await certs.add("shipmate", crt, key)
    assert report["enabled"] is True and report["hostnames"] == ["shipmate.apps.test"]
    assert await _stored(certs.store) == [tlskeys.cert_key("shipmate")]
    assert (await certs.report("shipmate"))["source"] == "manual"
    other, other_key = generate_self_signed(["web.apps.test"], now=NOW)
    with pytest.raises(ValidationError):  # it serves the dashboard's one name only
        await certs.add("shipmate", other, other_key)
    await certs.remove("shipmate")
    assert await _stored(certs.store) == []
    assert (await certs.generate("shipmate", []))["hostnames"] == ["shipmate.apps.test"]
    with pytest.raises(NotFoundError, match="App nosuch does not exist"):
        await certs.add("nosuch", crt, key)  # any other name still needs its app


async def test_the_dashboard_route_needs_a_global_domain() -> None:
    store = await memory_store()
    with pytest.raises(ValidationError, match="has no domain") as err:
        await Certs(store, PaasState(store), wall=lambda: NOW).generate("shipmate", [])
    assert "shipmate.DOMAIN" in (err.value.hint or "")
    await store.close()


async def test_no_app_can_be_named_shipmate(certs: Certs) -> None:
    with pytest.raises(ConflictError, match="reserved for the Shipmate dashboard"):
        await certs.state.create_app("shipmate")
