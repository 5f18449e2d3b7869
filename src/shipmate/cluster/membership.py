"""``cluster init``, ``join`` and ``leave`` on the machine itself: certificates, the machine
file, the supervisor (etcd + daemon), and the etcd membership changes a joiner or a leaver
makes. The machine holding the CA answers joins in :mod:`shipmate.cluster.admit`.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from shipmate.cluster import ca, join_tokens, supervise
from shipmate.cluster import machine as mach
from shipmate.cluster.tlsfiles import etcd_tls, pinned_context
from shipmate.errors import ClusterError, ConflictError, StoreError
from shipmate.store.etcd import EtcdStore

Progress = Callable[[str], None]


def _refuse_if_configured(state_dir: Path) -> None:
    mc = mach.load(state_dir)
    if mc is not None:
        raise ConflictError(f"this machine is {mc.name} of cluster {mc.cluster} already",
                            hint="`shipmate cluster leave` first")


def _start(state_dir: Path, mc: mach.MachineConfig) -> None:
    mach.save(state_dir, mc)
    supervise.spawn(state_dir, mc)


async def init(state_dir: Path, *, cluster: str, name: str, address: str, api_port: int,
               log_dir: str = "", progress: Progress) -> mach.MachineConfig:
    """The first machine: a cluster CA, its own certificate, a one-member etcd with TLS and
    the daemon on it, both under the supervisor."""
    _refuse_if_configured(state_dir)
    mach.validate_name(name)
    mach.validate_address(address)
    p = ca.pki(state_dir)
    progress(f"Creating the cluster CA in {p.dir}")
    await asyncio.to_thread(ca.create_ca, p, cluster)
    await asyncio.to_thread(ca.issue_own, p, name, [address])
    single = Path(state_dir) / "store.db"
    carry = str(single) if single.exists() else ""
    if carry:
        progress("Carrying the single-machine store into etcd (apps, releases, units, keys)")
    mc = mach.MachineConfig(cluster, name, address, True, (mach.client_url(address),),
                            api_port=api_port, log_dir=log_dir, carry_from=carry)
    progress(f"Starting etcd (client and peer TLS) and the daemon as {name} ({address})")
    _start(state_dir, mc)
    await wait_etcd(state_dir, list(mc.endpoints))
    return mc


async def wait_etcd(state_dir: Path, endpoints: list[str], *, timeout: float = 60.0) -> None:
    """Until the etcd cluster answers a linearizable read through ``endpoints``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            store = await EtcdStore.connect(endpoints, tls=etcd_tls(ca.pki(state_dir).dir),
                                            timeout=3.0)
            await store.close()
            return
        except StoreError as exc:
            if time.monotonic() > deadline:
                raise ClusterError(f"etcd does not answer after {timeout:.0f}s: {exc.message}",
                                   hint="see etcd.log in the machine's log directory") from None
            await asyncio.sleep(0.5)


async def _fetch_ca(base: str, fingerprint: str) -> bytes:
    """The CA the machine at ``base`` uses, checked against the token's fingerprint before
    anything is sent (the connection is not verified yet: the pin is what proves it)."""
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as s, \
            s.get(base + "/v1/cluster/ca", ssl=insecure) as resp:
        if resp.status != 200:
            raise ClusterError(f"{base} does not take joins (HTTP {resp.status})",
                               hint="give the address of the machine that ran `cluster init`")
        pem = await resp.read()
    if ca.fingerprint(pem) != fingerprint:
        raise ClusterError(f"the CA of {base} is not the one the token names",
                           hint="check the address; a token belongs to one cluster")
    return pem


async def _retry(fn: Callable[[], Awaitable[bytes]], seconds: float) -> bytes:
    """``fn()``, tried again while the machine cannot be reached (its daemon may be starting)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await fn()
        except (aiohttp.ClientConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(1.0)


async def _request_join(base: str, ca_pem: bytes, body: dict[str, Any]) -> dict[str, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s, \
            s.post(base + "/v1/cluster/join", json=body, ssl=pinned_context(ca_pem)) as resp:
        data = await resp.json(content_type=None)
    if resp.status != 200:
        err = data.get("error", {}) if isinstance(data, dict) else {}
        raise ClusterError(f"the join was refused: {err.get('message', resp.status)}",
                           hint=err.get("hint") or None)
    return dict(data)


async def join(state_dir: Path, signer: str, token: str, *, name: str, address: str,
               api_port: int, log_dir: str = "", progress: Progress) -> mach.MachineConfig:
    """Join the cluster whose CA machine answers at ``signer`` (an address): certificate
    signed there, then this machine's etcd member (promoted once in sync) or client, and its
    daemon. Nothing is written here before the token was accepted."""
    _refuse_if_configured(state_dir)
    mach.validate_name(name)
    mach.validate_address(address)
    _, fingerprint = join_tokens.parse(token)
    host = f"[{signer}]" if ":" in signer else signer
    base = f"https://{host}:{api_port}"
    try:
        ca_pem = await _retry(lambda: _fetch_ca(base, fingerprint), 30.0)
        progress(f"The cluster CA of {signer} matches the token")
        key = ca.new_key()
        data = await _request_join(base, ca_pem, {
            "token": token, "name": name, "address": address,
            "csr": ca.make_csr(key, name).decode()})
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach {base}: {exc or type(exc).__name__}",
                           hint="is its daemon up, and TCP port "
                                f"{api_port} open between the machines?") from None
    p = ca.pki(state_dir)
    ca.make_dir(p)
    ca.write_private(p.key, ca.key_pem(key))
    ca.write_private(p.cert, data["cert"].encode())
    ca.write_private(p.ca_cert, data["ca"].encode())
    others = [str(u) for u in data["endpoints"]]
    member = bool(data["member"])
    mc = mach.MachineConfig(
        str(data["cluster"]), name, address, member,
        tuple(([mach.client_url(address)] if member else []) + others),
        initial_cluster=str(data.get("initial_cluster", "")), initial_state="existing",
        api_port=api_port, log_dir=log_dir)
    role = "an etcd member" if member else "an etcd client (the cluster has its members)"
    progress(f"Certificate signed; {name} joins cluster {mc.cluster} as {role}")
    _start(state_dir, mc)
    if member:
        await _promote(state_dir, others, int(data["member_id"], 16), progress)
    return mc


async def _promote(state_dir: Path, others: list[str], member_id: int, progress: Progress,
                   *, timeout: float = 90.0) -> None:
    """Promote this machine's learner once it has caught up with the leader."""
    store = await EtcdStore.connect(others, tls=etcd_tls(ca.pki(state_dir).dir), timeout=5.0)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                await store.promote(member_id)
                progress("etcd member promoted (it votes now)")
                return
            except StoreError as exc:
                if time.monotonic() > deadline:
                    raise ClusterError(f"the etcd member was not promoted: {exc.message}",
                                       hint="see etcd.log; `shipmate cluster leave` undoes "
                                            "the join") from None
            await asyncio.sleep(0.5)
    finally:
        await store.close()


async def remove_own_member(state_dir: Path, mc: mach.MachineConfig) -> bool:
    """Remove this machine's etcd member through the other members; False when it has none,
    or it is the last one (nobody left to ask)."""
    if not mc.member:
        return False
    tls = etcd_tls(ca.pki(state_dir).dir)
    store = await EtcdStore.connect(list(mc.endpoints), tls=tls, timeout=5.0)
    try:
        found = await store.members()
    finally:
        await store.close()
    mine = [m for m in found if m.name == mc.name or mach.peer_url(mc.address) in m.peer_urls]
    others = [u for m in found if m not in mine and not m.learner for u in m.client_urls]
    if not mine or not others:
        return False
    store = await EtcdStore.connect(others, tls=tls, timeout=5.0)
    try:
        for m in mine:
            await store.remove_member(m.id)
    finally:
        await store.close()
    return True


def forget(state_dir: Path) -> None:
    """After leaving: no machine file, supervisor stopped, etcd data gone; the PKI directory
    is kept aside as ``pki.left`` (the CA key, if this machine had it, is not lost)."""
    mach.path(state_dir).unlink(missing_ok=True)
    supervise.stop(state_dir)
    shutil.rmtree(Path(state_dir) / mach.ETCD_DIR, ignore_errors=True)
    p = ca.pki(state_dir)
    if p.dir.exists():
        left = p.dir.with_name(p.dir.name + ".left")
        shutil.rmtree(left, ignore_errors=True)
        p.dir.rename(left)


def sign_client(state_dir: Path, csr_pem: bytes, name: str,
                addresses: list[str] | None = None) -> bytes:
    """A certificate for an operator's tools (etcdctl, ``cluster status`` from another
    host) or, with ``addresses``, a machine's (rotating the CA), signed by this machine's
    CA (the first certificate of ``ca.crt``)."""
    p = ca.pki(state_dir)
    if not p.can_sign():
        raise ClusterError("this machine does not hold the cluster CA key",
                           hint="run this on the machine that ran `cluster init`")
    return ca.sign(p.ca_cert.read_bytes(), p.ca_key.read_bytes(), csr_pem,
                   mach.validate_name(name), list(addresses or []))
