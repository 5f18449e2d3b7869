"""The etcd store over mutual TLS against real etcd members on loopback (random ports): a
client without a certificate is refused, one with the cluster's works, and a client
following the membership learns a member added (as a learner, then promoted) later."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipmate.cluster import ca
from shipmate.cluster.tlsfiles import etcd_tls
from shipmate.errors import StoreError
from shipmate.store.etcd import EtcdStore
from tests.conftest import free_port

pytestmark = pytest.mark.integration


class Member:
    """One TLS etcd member on 127.0.0.1."""

    def __init__(self, name: str, pki: ca.Pki, root: Path) -> None:
        self.name, self.pki, self.root = name, pki, root / name
        self.client, self.peer = free_port("127.0.0.1"), free_port("127.0.0.1")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"https://127.0.0.1:{self.client}"

    @property
    def peer_url(self) -> str:
        return f"https://127.0.0.1:{self.peer}"

    def start(self, initial: str, state: str) -> None:
        p = self.pki
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "etcd.log", "ab")  # noqa: SIM115 - kept for the process
        self.proc = subprocess.Popen([
            "etcd", "--name", self.name, "--data-dir", str(self.root / "data"),
            "--listen-client-urls", self.client_url, "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", initial, "--initial-cluster-state", state,
            "--cert-file", str(p.cert), "--key-file", str(p.key), "--client-cert-auth",
            "--trusted-ca-file", str(p.ca_cert), "--peer-cert-file", str(p.cert),
            "--peer-key-file", str(p.key), "--peer-client-cert-auth",
            "--peer-trusted-ca-file", str(p.ca_cert)], stdout=log, stderr=log)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def root() -> Iterator[Path]:
    if shutil.which("etcd") is None:
        pytest.skip("etcd is not installed")
    path = Path(tempfile.mkdtemp(prefix="shipmate-etcd-tls-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def _connect(endpoints: list[str], pki: ca.Pki, **kw: float) -> EtcdStore:
    for _ in range(100):
        try:
            return await EtcdStore.connect(endpoints, tls=etcd_tls(pki.dir), timeout=2.0, **kw)
        except StoreError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"etcd at {endpoints} did not answer")


async def test_mutual_tls_and_following_the_membership(root: Path) -> None:
    pki = ca.pki(root / "state")
    ca.create_ca(pki, "t")
    ca.issue_own(pki, "m1", ["127.0.0.1"])
    one, two = Member("m1", pki, root), Member("m2", pki, root)
    one.start(f"m1={one.peer_url}", "new")
    try:
        store = await _connect([one.client_url], pki, sync_interval=0.2)
        try:
            await store.put("/k", "v")
            refused = subprocess.run(["curl", "-s", "--cacert", str(pki.ca_cert),
                                      one.client_url + "/health"], capture_output=True)
            assert refused.returncode != 0  # no client certificate: the handshake fails
            added, after = await store.add_learner(two.peer_url)
            assert added.learner and len(after) == 2
            two.start(",".join([f"m1={one.peer_url}", f"m2={two.peer_url}"]), "existing")
            for _ in range(100):
                try:
                    await store.promote(added.id)
                    break
                except StoreError:
                    await asyncio.sleep(0.2)
            for _ in range(50):  # the client follows: the new member is an endpoint now
                if len(store.endpoints) == 2:
                    break
                await asyncio.sleep(0.1)
            assert store.endpoints == [f"127.0.0.1:{one.client}", f"127.0.0.1:{two.client}"]
            # the member the client started with leaves the cluster and stops...
            await store.remove_member(next(m.id for m in await store.members()
                                           if m.name == "m1"))
            one.stop()
            kv = await store.get("/k")  # ...and it goes on through the one it learned of
            assert kv is not None and kv.value == b"v"
        finally:
            await store.close()
    finally:
        one.stop()
        two.stop()
