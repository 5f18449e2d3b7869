"""The package cache against a fake upstream on loopback: forms, single-flight, HTTP details."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from pathlib import Path

import aiohttp
import pytest

from shipmate.cache.server import CacheServer
from shipmate.cache.testing import FakeUpstream, Fault
from tests.integration.cache_helpers import get, running_cache, url

pytestmark = pytest.mark.integration


async def test_prefix_and_proxy_forms_share_one_download(
        cache: CacheServer, fake: FakeUpstream, http: aiohttp.ClientSession) -> None:
    body = os.urandom(300_000)
    fake.files["/debian/pool/main/h/hello/hello_1.0_amd64.deb"] = body
    prefix = url(cache, f"/{fake.authority}/debian/pool/main/h/hello/hello_1.0_amd64.deb")
    status, got, headers = await get(http, prefix)
    assert (status, got, headers["X-Cache"]) == (200, body, "MISS")
    proxied = f"http://{fake.authority}/debian/pool/main/h/hello/hello_1.0_amd64.deb"
    status, got, headers = await get(http, proxied, proxy=url(cache, ""))
    assert (status, got, headers["X-Cache"]) == (200, body, "HIT")
    assert fake.gets["/debian/pool/main/h/hello/hello_1.0_amd64.deb"] == 1
    seen = fake.headers_seen[0]
    assert seen.get("Accept-Encoding") == "identity"
    apt = cache.snapshot()["formats"]["apt"]
    assert (apt["hits"], apt["misses"], apt["upstream_fetches"]) == (1, 1, 1)
    assert apt["bytes_from_cache"] == len(body) and apt["bytes_from_upstream"] == len(body)


async def test_head_range_and_not_modified(
        cache: CacheServer, fake: FakeUpstream, http: aiohttp.ClientSession) -> None:
    body = bytes(range(256)) * 1000
    fake.files["/d/pool/x.deb"] = body
    target = url(cache, f"/{fake.authority}/d/pool/x.deb")
    async with http.head(target) as resp:  # HEAD on a miss: headers, no body, still cached
        assert resp.status == 200 and resp.content_length == len(body)
    await get(http, target)
    async with http.head(target) as resp:
        assert resp.status == 200 and resp.headers["X-Cache"] == "HIT"
        assert await resp.read() == b""
    status, got, headers = await get(http, target, headers={"Range": "bytes=1000-1999"})
    assert status == 206 and got == body[1000:2000]
    assert headers["Content-Range"] == f"bytes 1000-1999/{len(body)}"
    status, _, headers = await get(http, target)
    last_modified = headers["Last-Modified"]
    assert last_modified == "Sat, 01 Jun 2024 00:00:00 GMT"  # upstream's, kept on the file
    status, got, _ = await get(http, target, headers={"If-Modified-Since": last_modified})
    assert status == 304 and got == b""
    assert fake.gets["/d/pool/x.deb"] == 1


async def test_pipelined_requests_answered_in_order(
        cache: CacheServer, fake: FakeUpstream) -> None:
    fake.files["/d/pool/a.deb"] = b"A" * 5000
    fake.files["/d/pool/b.deb"] = b"B" * 7000
    loop = asyncio.get_running_loop()
    requests = b"".join(
        f"GET /{fake.authority}/d/pool/{n}.deb HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        for n in ("a", "b", "a"))
    with socket.create_connection(("127.0.0.1", cache.port), timeout=10) as sock:
        sock.setblocking(False)
        await loop.sock_sendall(sock, requests)  # all three before reading anything
        data = b""
        while data.count(b"HTTP/1.1 200") < 3 or not data.endswith(b"A" * 5000):
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), 10)
            assert chunk, data[:300]
            data += chunk
    parts = data.split(b"HTTP/1.1 200 OK")[1:]
    bodies = [p.split(b"\r\n\r\n", 1)[1] for p in parts]
    assert bodies == [b"A" * 5000, b"B" * 7000, b"A" * 5000]


async def test_fifty_clients_one_upstream_fetch(
        cache: CacheServer, fake: FakeUpstream, http: aiohttp.ClientSession) -> None:
    body = os.urandom(24 * 2**20)
    path = "/d/pool/big_1.0_amd64.deb"
    fake.files[path] = body
    fake.faults[path] = Fault("slow", delay=0.01)  # ~4 s: clients join mid-download
    target = url(cache, f"/{fake.authority}{path}")

    async def client(i: int) -> str:
        await asyncio.sleep(i * 0.05)
        _, got, _ = await get(http, target)
        return hashlib.sha256(got).hexdigest()

    conn = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=conn) as many:
        http = many
        digests = await asyncio.gather(*(client(i) for i in range(50)))
    assert set(digests) == {hashlib.sha256(body).hexdigest()}
    assert fake.gets[path] == 1
    snap = cache.snapshot()["formats"]["apt"]
    assert snap["upstream_fetches"] == 1 and snap["bytes_from_upstream"] == len(body)


async def test_client_disconnect_does_not_abort_download(
        cache: CacheServer, fake: FakeUpstream, http: aiohttp.ClientSession) -> None:
    body = os.urandom(2 * 2**20)
    path = "/d/pool/c.deb"
    fake.files[path] = body
    fake.faults[path] = Fault("slow", delay=0.02, times=1)
    async with http.get(url(cache, f"/{fake.authority}{path}")) as resp:
        await resp.content.readexactly(100_000)
        resp.close()  # walk away mid-body
    for _ in range(100):
        if not cache.fetcher.downloads:
            break
        await asyncio.sleep(0.1)
    status, got, headers = await get(http, url(cache, f"/{fake.authority}{path}"))
    assert (status, got == body, headers["X-Cache"]) == (200, True, "HIT")
    assert fake.gets[path] == 1


async def test_volatile_index_revalidated_after_freshness(
        tmp_path: Path, fake: FakeUpstream, http: aiohttp.ClientSession) -> None:
    path = "/d/dists/bookworm/InRelease"
    fake.files[path] = b"Origin: Debian\n"
    async with running_cache(tmp_path, fake, cache_fresh_seconds=0.3) as cache:
        target = url(cache, f"/{fake.authority}{path}")
        assert (await get(http, target))[2]["X-Cache"] == "MISS"
        assert (await get(http, target))[2]["X-Cache"] == "HIT"  # within the window
        await asyncio.sleep(0.4)
        status, got, headers = await get(http, target)
        assert (status, got, headers["X-Cache"]) == (200, b"Origin: Debian\n", "REVALIDATED")
        assert fake.conditional[path] == 1
        fake.files[path] = b"Origin: Debian\nChanged: yes\n"
        await asyncio.sleep(0.4)
        status, got, headers = await get(http, target)
        assert (got, headers["X-Cache"]) == (b"Origin: Debian\nChanged: yes\n", "MISS")
        assert (await get(http, target))[1] == b"Origin: Debian\nChanged: yes\n"


async def test_redirects_followed_only_to_allowlisted_hosts(
        cache: CacheServer, fake: FakeUpstream, http: aiohttp.ClientSession) -> None:
    fake.files["/d/pool/real.deb"] = b"real"
    fake.redirects["/d/pool/moved.deb"] = f"http://{fake.authority}/d/pool/real.deb"
    status, got, _ = await get(http, url(cache, f"/{fake.authority}/d/pool/moved.deb"))
    assert (status, got) == (200, b"real")
    fake.redirects["/d/pool/evil.deb"] = f"http://127.0.0.2:{fake.port}/d/pool/real.deb"
    status, got, _ = await get(http, url(cache, f"/{fake.authority}/d/pool/evil.deb"))
    assert status == 502 and b"not in cache_upstreams" in got
    assert fake.gets["/d/pool/real.deb"] == 1


async def test_lru_eviction_under_size_cap(
        tmp_path: Path, fake: FakeUpstream, http: aiohttp.ClientSession) -> None:
    for n in range(5):
        fake.files[f"/d/pool/{n}.deb"] = bytes([n]) * 100_000
    async with running_cache(tmp_path, fake, cache_max_bytes=350_000) as cache:
        for n in (0, 1, 2):
            await get(http, url(cache, f"/{fake.authority}/d/pool/{n}.deb"))
            await asyncio.sleep(0.01)
        await get(http, url(cache, f"/{fake.authority}/d/pool/0.deb"))  # 0 is now recent
        await get(http, url(cache, f"/{fake.authority}/d/pool/3.deb"))  # over the cap
        keys = {e.url.rsplit("/", 1)[1] for e in cache.storage.entries()}
        assert "1.deb" not in keys and {"0.deb", "3.deb"} <= keys
        assert cache.storage.total_bytes <= 350_000
        files = [p for p in (tmp_path / "cache" / "data").rglob("*") if p.is_file()]
        assert len(files) == len(keys)


async def test_stats_endpoints(cache: CacheServer, fake: FakeUpstream,
                               http: aiohttp.ClientSession) -> None:
    fake.files["/d/pool/s.deb"] = b"s" * 10
    await get(http, url(cache, f"/{fake.authority}/d/pool/s.deb"))
    status, body, _ = await get(http, url(cache, "/metrics"))
    assert status == 200
    assert b'shipmate_cache_misses_total{format="apt"} 1' in body
    status, body, _ = await get(http, url(cache, "/_shipmate/cache"))
    assert status == 200 and b"<table" in body
    status, body, _ = await get(http, url(cache, "/_shipmate/cache/stats.json"))
    assert status == 200 and b'"upstream_fetches": 1' in body
