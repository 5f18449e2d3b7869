"""The cache is not an open proxy: traversal, other hosts, other ports, CONNECT elsewhere and
clients outside the allowlist are refused, and nothing reaches upstream for them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from shipmate.cache.server import CacheServer
from shipmate.cache.testing import FakeUpstream
from tests.integration.cache_helpers import get, running_cache, url

pytestmark = pytest.mark.integration


async def raw_request(port: int, request_line: str) -> int:
    """Send one request exactly as written (clients would normalise it); the status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{request_line}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    return int(status_line.split()[1])


TRAVERSALS = [
    ("GET /{up}/d/../../etc/passwd HTTP/1.1", 403),
    ("GET /{up}/d/%2e%2e/etc/passwd HTTP/1.1", 403),
    ("GET /{up}/d/%2E%2e/%2e%2E/etc/passwd HTTP/1.1", 403),
    ("GET /{up}/d/./pool/x.deb HTTP/1.1", 403),
    ("GET /{up}/d/%252e%252e/etc/passwd HTTP/1.1", 400),
    ("GET /{up}/d/..%2fetc%2fpasswd HTTP/1.1", 400),
    ("GET /{up}/d/pool%2f..%2f..%2fx HTTP/1.1", 400),
    ("GET /{up}/d/x%00.deb HTTP/1.1", 400),
    ("GET /{up}/d/..\\..\\x HTTP/1.1", 400),
    ("GET http://{up}/d/../../etc/passwd HTTP/1.1", 403),
    ("GET http://{up}/d/%2e%2e/x HTTP/1.1", 403),
]

OPEN_PROXY = [
    ("GET http://example.com/ HTTP/1.1", 403),
    ("GET http://127.0.0.1/ HTTP/1.1", 403),
    ("GET http://127.0.0.1:22/ HTTP/1.1", 403),
    ("GET http://deb.debian.org:8080/debian/ HTTP/1.1", 403),
    ("GET http://user:pw@{up}/d/x.deb HTTP/1.1", 400),
    ("GET /127.0.0.1:22/x HTTP/1.1", 403),
    ("GET /example.com/x.deb HTTP/1.1", 403),
    ("GET /pypi/files/http/example.com/x.whl HTTP/1.1", 403),
    ("GET /npm/_files/https/example.com/x.tgz HTTP/1.1", 403),
    ("CONNECT example.com:443 HTTP/1.1", 403),
    ("CONNECT deb.debian.org:22 HTTP/1.1", 403),
    ("CONNECT {up} HTTP/1.1", 403),
    ("POST /{up}/d/x.deb HTTP/1.1", 405),
]


@pytest.mark.parametrize(("line", "status"), TRAVERSALS + OPEN_PROXY)
async def test_refused(cache: CacheServer, fake: FakeUpstream,
                       line: str, status: int) -> None:
    fake.files["/d/x.deb"] = b"x"
    fake.files["/etc/passwd"] = b"root:x:0:0"
    assert await raw_request(cache.port, line.format(up=fake.authority)) == status
    assert sum(fake.gets.values()) == 0
    assert cache.snapshot()["refused"] >= 1 or status == 405


async def test_client_outside_allowlist_refused(tmp_path: Path, fake: FakeUpstream,
                                                http: aiohttp.ClientSession) -> None:
    fake.files["/d/x.deb"] = b"x"
    async with running_cache(tmp_path, fake, cache_clients="10.0.0.0/8") as server:
        status, _, _ = await get(http, url(server, f"/{fake.authority}/d/x.deb"))
        assert status == 403
        assert (await get(http, url(server, "/metrics")))[0] == 403
    assert sum(fake.gets.values()) == 0


async def test_gc_over_http_from_loopback(cache: CacheServer, fake: FakeUpstream,
                                          http: aiohttp.ClientSession) -> None:
    fake.files["/d/x.deb"] = b"x" * 10
    await get(http, url(cache, f"/{fake.authority}/d/x.deb"))
    entry = cache.storage.entries()[0]
    cache.storage.path(entry).write_bytes(b"short")  # damaged behind the cache's back
    (cache.storage.data / "ab").mkdir(exist_ok=True)
    (cache.storage.data / "ab" / "orphan").write_bytes(b"?")
    async with http.post(url(cache, "/_shipmate/cache/gc")) as resp:
        report = await resp.json()
    assert report["broken_entries"] == 1 and report["orphan_files"] == 1
    status, got, headers = await get(http, url(cache, f"/{fake.authority}/d/x.deb"))
    assert (status, got, headers["X-Cache"]) == (200, b"x" * 10, "MISS")
