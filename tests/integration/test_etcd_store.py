"""EtcdStore against real etcd members: failover, watch resume across restarts, lease expiry."""

from __future__ import annotations

import asyncio
import gc
import json
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shipmate import metrics
from shipmate.config import load
from shipmate.errors import ConfigError, StoreError
from shipmate.store.base import Compare, Event, Op, Watch
from shipmate.store.etcd import EtcdStore
from shipmate.store.etcd_codec import prefix_end
from shipmate.store.etcd_conn import parse_endpoint
from shipmate.store.etcd_watch import EtcdWatch
from shipmate.store.metered import MeteredStore
from shipmate.store.open import open_store
from tests.conftest import EtcdServer, free_port

pytestmark = pytest.mark.integration

# Fast elections, so a killed leader is replaced within about a second.
FAST = ["--heartbeat-interval", "50", "--election-timeout", "500"]


def start_cluster(size: int) -> list[EtcdServer]:
    """``size`` members of one new cluster on loopback."""
    members = [EtcdServer(name=f"m{i}") for i in range(size)]
    initial = ",".join(f"{m.name}=http://{m.host}:{m.peer_port}" for m in members)
    token = f"shipmate-test-{time.monotonic_ns()}"
    for m in members:
        m.start([*FAST, "--initial-cluster", initial, "--initial-cluster-token", token])
    return members


@pytest.fixture
def cluster() -> Iterator[list[EtcdServer]]:
    members = start_cluster(3)
    yield members
    for m in members:
        m.cleanup()


@pytest.fixture
def single() -> Iterator[EtcdServer]:
    server = EtcdServer()
    server.start(FAST)
    yield server
    server.cleanup()


@pytest.fixture
async def cluster_store(cluster: list[EtcdServer]) -> AsyncIterator[EtcdStore]:
    store = await EtcdStore.connect([m.endpoint for m in cluster], prefix="/it/", timeout=5.0)
    yield store
    await store.close()


def member_of(cluster: list[EtcdServer], target: str) -> EtcdServer:
    return next(m for m in cluster if target.endswith(f":{m.client_port}"))


async def collect(watch: Watch, count: int, timeout: float = 30.0) -> list[Event]:
    out: list[Event] = []

    async def run() -> None:
        while len(out) < count:
            out.append(await anext(watch))

    await asyncio.wait_for(run(), timeout)
    return out


async def put_eventually(store: EtcdStore, key: str, value: str, within: float = 15.0) -> int:
    """Put, allowing failures only while the cluster elects a new leader."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await store.put(key, value)
        except StoreError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def assert_exactly_once(events: list[Event], revisions: list[int]) -> None:
    seen = [e.revision for e in events]
    assert seen == sorted(set(seen)), f"events out of order or duplicated: {seen}"
    missing = set(revisions) - set(seen)
    assert not missing, f"watch lost the events at revisions {sorted(missing)}"


async def test_connect_skips_a_dead_endpoint(single: EtcdServer) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    store = await EtcdStore.connect([dead, single.endpoint], prefix="/it/", timeout=5.0)
    try:
        assert time.monotonic() - started < 3.0
        assert store.current_endpoint.endswith(f":{single.client_port}")
        assert await store.put("k", "v") > 0
    finally:
        await store.close()


async def test_no_member_answers_is_a_store_error_naming_the_endpoints() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreError) as info:
        await EtcdStore.connect([dead], timeout=1.0)
    assert dead.removeprefix("http://") in str(info.value.hint)


async def test_failover_keeps_requests_and_watch_working(
    cluster: list[EtcdServer], cluster_store: EtcdStore
) -> None:
    store = cluster_store
    watch = await store.watch("/f/")
    revisions = [await store.put(f"/f/{i:03}", str(i)) for i in range(20)]
    await collect(watch, 10)  # some events consumed, the rest still in flight

    victim = member_of(cluster, store.current_endpoint)
    assert victim.proc is not None
    victim.proc.kill()
    victim.proc.wait(10)

    revisions += [await put_eventually(store, f"/f/{i:03}", str(i)) for i in range(20, 40)]
    assert not store.current_endpoint.endswith(f":{victim.client_port}")
    kvs, _ = await store.range("/f/")
    assert [kv.key for kv in kvs] == [f"/f/{i:03}" for i in range(40)]

    events = await collect(watch, len(revisions) - 10)
    assert_exactly_once(events, revisions[10:])
    assert {e.kv.key for e in events} >= {f"/f/{i:03}" for i in range(10, 40)}
    await watch.close()


async def test_failover_when_the_leader_dies(cluster: list[EtcdServer]) -> None:
    leader = await _leader(cluster)
    others = [m for m in cluster if m is not leader]
    # the client talks to the leader: its requests and its watch must move to a follower
    store = await EtcdStore.connect([leader.endpoint, *(m.endpoint for m in others)],
                                    prefix="/it/", timeout=5.0)
    try:
        watch = await store.watch("/l/")
        first = await store.put("/l/a", "1")
        assert store.current_endpoint.endswith(f":{leader.client_port}")
        assert leader.proc is not None
        leader.proc.kill()
        leader.proc.wait(10)

        second = await put_eventually(store, "/l/b", "2")
        third = await store.put("/l/c", "3")
        events = await collect(watch, 3)
        assert_exactly_once(events, [first, second, third])
        assert [e.kv.key for e in events] == ["/l/a", "/l/b", "/l/c"]
        assert (await _leader(others)) in others
        await watch.close()
    finally:
        await store.close()


async def _leader(members: list[EtcdServer]) -> EtcdServer:
    """The member that leads, from `etcdctl endpoint status` (bounded wait for an election)."""
    deadline = time.monotonic() + 15
    while True:
        proc = await asyncio.create_subprocess_exec(
            "etcdctl", "--endpoints", ",".join(m.endpoint for m in members),
            "endpoint", "status", "-w", "json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 15)
        rows = json.loads(out or b"[]")
        ids = {r["Status"]["header"]["member_id"]: r["Endpoint"] for r in rows}
        leader_ids = {r["Status"]["leader"] for r in rows}
        for leader_id in leader_ids:
            if leader_id in ids:
                return next(m for m in members if m.endpoint == ids[leader_id])
        assert time.monotonic() < deadline, f"no leader among {ids}"
        await asyncio.sleep(0.2)


async def test_a_hung_member_is_noticed_by_keepalive(cluster: list[EtcdServer],
                                                     cluster_store: EtcdStore) -> None:
    """SIGSTOP leaves the TCP connection open but silent: only unanswered HTTP/2 pings reveal
    it (5 s to answer), and the watch then moves to another member."""
    store = cluster_store
    watch = await store.watch("/h/")
    first = await store.put("/h/a", "1")
    victim = member_of(cluster, store.current_endpoint)
    assert victim.proc is not None
    victim.proc.send_signal(signal.SIGSTOP)
    try:
        second = await put_eventually(store, "/h/b", "2", within=20.0)
        assert not store.current_endpoint.endswith(f":{victim.client_port}")
        events = await collect(watch, 2, timeout=40.0)
        assert_exactly_once(events, [first, second])
        assert isinstance(watch, EtcdWatch)
        assert watch.reconnects >= 1
        await watch.close()
    finally:
        victim.proc.send_signal(signal.SIGCONT)



async def test_a_partition_leaves_no_task_pending(single: EtcdServer,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Keepalives and a watch that fail during a partition leave no gRPC task behind: the
    daemon log stays free of "Task was destroyed but it is pending!"."""
    store = await EtcdStore.connect([single.endpoint], prefix="/it/", timeout=2.0)
    try:
        watch = await store.watch("/p/")
        lease = await store.grant(10)
        assert single.proc is not None
        single.proc.send_signal(signal.SIGSTOP)  # connections open, nothing answers
        try:
            for _ in range(3):
                with pytest.raises(StoreError):
                    await store.keepalive(lease)
        finally:
            single.proc.send_signal(signal.SIGCONT)
        single.stop()  # then nothing listens at all
        with pytest.raises(StoreError):
            await store.keepalive(lease)
        await watch.close()
    finally:
        await store.close()
    gc.collect()  # a pending task would be reported as it is collected
    await asyncio.sleep(0)
    logged = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert not [m for m in logged if "Task was destroyed" in m], logged
    assert not [m for m in logged if "never retrieved" in m], logged

async def test_watch_resumes_after_etcd_restarts(single: EtcdServer) -> None:
    store = await EtcdStore.connect([single.endpoint], prefix="/it/", timeout=5.0)
    try:
        watch = await store.watch("/r/")
        before = [await store.put(f"/r/{i}", str(i)) for i in range(5)]
        got = await collect(watch, 3)

        single.stop()  # same data dir and ports on restart
        await asyncio.sleep(0.5)
        single.start(FAST)

        after = [await store.put(f"/r/{i}", str(i)) for i in range(5, 10)]
        got += await collect(watch, len(before) + len(after) - 3)
        assert_exactly_once(got, before + after)
        assert [e.kv.key for e in got] == [f"/r/{i}" for i in range(10)]
        assert isinstance(watch, EtcdWatch)
        assert watch.reconnects >= 1
        await watch.close()
    finally:
        await store.close()


async def test_lease_expiry_removes_keys_and_notifies(etcd_server: EtcdServer,
                                                      etcd_prefix: str) -> None:
    store = await EtcdStore.connect([etcd_server.endpoint], prefix=etcd_prefix)
    try:
        lease = await store.grant(2)
        await store.put("/lease/a", "1", lease=lease)
        await store.put("/lease/b", "2", lease=lease)
        await store.put("/lease/keep", "3")
        watch = await store.watch("/lease/")

        # kept alive past its TTL, the lease and its keys stay
        for _ in range(4):
            await asyncio.sleep(0.8)
            assert await store.keepalive(lease) >= 2
        assert (await store.get("/lease/a")) is not None
        left = await store.time_to_live(lease)
        assert left is not None and 0 < left <= 2.0

        events = await collect(watch, 2, timeout=10.0)  # expiry: both keys deleted
        assert sorted((e.type, e.kv.key) for e in events) == [
            ("delete", "/lease/a"), ("delete", "/lease/b")]
        assert await store.get("/lease/a") is None
        assert (await store.get("/lease/keep")) is not None
        assert await store.time_to_live(lease) is None
        await watch.close()
    finally:
        await store.close()


async def test_prefixes_isolate_stores_sharing_one_etcd(etcd_server: EtcdServer,
                                                        etcd_prefix: str) -> None:
    a = await EtcdStore.connect([etcd_server.endpoint], prefix=etcd_prefix + "a")
    b = await EtcdStore.connect([etcd_server.endpoint], prefix=etcd_prefix + "b")
    try:
        watch_b = await b.watch("")
        await a.put("/k", "from a")
        res = await a.txn([Compare.missing("/k2")], [Op.put("/k2", "x"), Op.get("/", prefix=True)])
        assert [kv.key for kv in res.responses[1]] == ["/k", "/k2"]
        assert await b.get("/k") is None
        assert (await b.range(""))[0] == []
        assert await b.create("/k", "from b")  # a's /k is not b's /k
        event = await asyncio.wait_for(anext(watch_b), 10)
        assert (event.kv.key, event.kv.value) == ("/k", b"from b")
        assert [kv.key for kv in (await a.range(""))[0]] == ["/k", "/k2"]
        assert await b.delete("", prefix=True) == 1
        assert (await a.get("/k")) is not None
        await watch_b.close()
    finally:
        await a.close()
        await b.close()


async def test_open_store_builds_the_configured_backend(etcd_server: EtcdServer,
                                                        tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    config = load({"SHIPMATE_STORE": "etcd", "SHIPMATE_STATE_DIR": str(tmp_path),
                   "SHIPMATE_ETCD_ENDPOINTS": f" {dead} , {etcd_server.endpoint},"})
    store = await open_store(config)
    try:
        assert isinstance(store, MeteredStore) and isinstance(store.inner, EtcdStore)
        assert len(store.endpoints) == 2  # the backend's own attributes reach through
        before = metrics.STORE_REQUEST_SECONDS.count(backend="etcd", op="revision")
        assert await store.revision() > 0
        assert metrics.STORE_REQUEST_SECONDS.count(backend="etcd", op="revision") == before + 1
    finally:
        await store.close()


def test_endpoints_are_parsed_or_refused() -> None:
    assert parse_endpoint("http://10.0.0.1:2379") == "10.0.0.1:2379"
    assert parse_endpoint("etcd1") == "etcd1:2379"
    assert parse_endpoint("[::1]:4001") == "[::1]:4001"
    for bad in ("https://10.0.0.1:2379", "http://h:1/path", ""):
        with pytest.raises(ConfigError):
            parse_endpoint(bad)


def test_prefix_end() -> None:
    assert prefix_end(b"/a/") == b"/a0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") == b"\0"
