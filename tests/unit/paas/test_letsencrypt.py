"""letsencrypt:* with a fake ACME session: the challenge is in the store (for every router)
while the CA validates, the account is made once, failures are recorded for the retry."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from shipmate.paas.acme_client import AcmeError, AcmeSettings, Pending
from shipmate.paas.certs import Certs
from shipmate.paas.letsencrypt import LetsEncrypt, Renewer
from shipmate.paas.state import PaasState
from shipmate.router import tlskeys
from shipmate.testing import FakeClock
from shipmate.testing.store import memory_store

NOW = dt.datetime.now(dt.UTC)
TOKEN = "T" * 43


class FakeCA:
    """Issues a certificate for the CSR's key once the challenge answer is in the store."""

    def __init__(self, le: LetsEncrypt | None = None) -> None:
        self.le = le
        self.registered = 0
        self.sessions: list[tuple[str, str]] = []
        self.seen_in_store: list[bool] = []
        self.fail: str | None = None
        self.revoked: list[str] = []

    def __call__(self, settings: AcmeSettings, key_pem: str, uri: str) -> FakeCA:
        self.sessions.append((settings.server, uri))
        return self

    def register(self) -> str:
        self.registered += 1
        return "https://ca.test/acct/1"

    def order(self, domains: list[str], cert_key_pem: str) -> tuple[Any, list[Pending]]:
        self.domains, self.key_pem = domains, cert_key_pem
        return "order", [Pending(domains[0], TOKEN, f"{TOKEN}.{'k' * 43}", None)]  # type: ignore[arg-type]

    def answer(self, pending: Pending) -> None:
        assert self.le is not None
        kv = asyncio.run_coroutine_threadsafe(
            self.le.store.get(tlskeys.challenge_key(pending.token)), self.loop).result(5)
        self.seen_in_store.append(kv is not None)

    def finalize(self, orderr: Any) -> str:
        if self.fail:
            raise AcmeError(self.fail)
        key = serialization.load_pem_private_key(self.key_pem.encode(), None)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Fake CA")])
        cert = (x509.CertificateBuilder().subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.domains[0])]))
            .issuer_name(name).public_key(key.public_key())  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(minutes=1))
            .not_valid_after(NOW + dt.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(d) for d in self.domains]), False)
            .sign(key, hashes.SHA256()))  # type: ignore[arg-type]
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    def revoke(self, crt_pem: str) -> None:
        self.revoked.append(crt_pem)


@pytest.fixture
async def le() -> AsyncIterator[tuple[LetsEncrypt, FakeCA]]:
    store = await memory_store()
    state = PaasState(store)
    await state.set_global_domain("apps.test")
    await state.create_app("web")
    ca = FakeCA()
    le = LetsEncrypt(store, Certs(store, state), session=ca, router_timeout=0.1)
    ca.le, ca.loop = le, asyncio.get_running_loop()  # type: ignore[attr-defined]
    yield le, ca
    await store.close()


async def test_enable_publishes_the_answer_then_stores_the_certificate(
        le: tuple[LetsEncrypt, FakeCA]) -> None:
    service, ca = le
    lines: list[str] = []
    await service.enable("web", lines.append)
    assert ca.domains == ["web.apps.test"] and ca.seen_in_store == [True]
    assert (await service.certs.report("web"))["source"] == "letsencrypt"
    kvs, _ = await service.store.range(tlskeys.CHALLENGES_PREFIX)
    assert kvs == []  # answers are removed once done
    await service.enable("web", lines.append)  # again: a renewal, same account
    assert ca.registered == 1 and ca.sessions[-1][1] == "https://ca.test/acct/1"
    [row] = await service.listing()
    assert row["app"] == "web" and row["last_error"] == "-" and row["renewal"] != "now"


async def test_the_dashboard_route_gets_one_without_an_app(
        le: tuple[LetsEncrypt, FakeCA]) -> None:
    service, ca = le
    await service.enable("shipmate", lambda _: None)
    assert ca.domains == ["shipmate.apps.test"]
    assert (await service.certs.report("shipmate"))["source"] == "letsencrypt"
    assert [row["app"] for row in await service.listing()] == ["shipmate"]
    await service.disable("shipmate")
    assert (await service.certs.report("shipmate"))["enabled"] is False


async def test_a_failure_is_recorded_and_backs_off(le: tuple[LetsEncrypt, FakeCA]) -> None:
    service, ca = le
    ca.fail = "the CA could not connect"
    with pytest.raises(AcmeError):
        await service.enable("web", lambda _: None)
    [row] = await service.listing()
    assert row["failures"] == 1 and row["last_error"] == "the CA could not connect"
    assert await service.renew_due(lambda _: None) == []  # backing off: nothing due
    assert (await service.certs.report("web"))["enabled"] is False
    kvs, _ = await service.store.range(tlskeys.CHALLENGES_PREFIX)
    assert kvs == []


async def test_settings_and_revoke(le: tuple[LetsEncrypt, FakeCA]) -> None:
    service, ca = le
    assert (await service.set_global("server", "staging"))["server"].startswith(
        "https://acme-staging-v02")
    shown = await service.set_global("eab-hmac-key", "c2VjcmV0")
    assert shown["eab-hmac-key"] == "<set>"
    await service.enable("web", lambda _: None)
    await service.revoke("web", lambda _: None)
    assert len(ca.revoked) == 1 and await service.listing() == []
    assert (await service.certs.report("web"))["enabled"] is False


async def test_only_the_leader_renews(le: tuple[LetsEncrypt, FakeCA]) -> None:
    service, ca = le
    await service.store.put("/shipmate/acme/apps/web", "{}")  # enabled, no certificate: due
    leader = False
    clock = FakeClock()
    task = asyncio.create_task(Renewer(service, lambda: leader, 60, clock).run())
    for _ in range(3):
        await clock.advance(61)
        await asyncio.sleep(0.05)
    assert ca.sessions == []
    leader = True
    await clock.advance(61)
    for _ in range(100):
        if (await service.certs.report("web"))["enabled"]:
            break
        await asyncio.sleep(0.02)
    task.cancel()
    assert (await service.certs.report("web"))["enabled"] is True
