"""PyPI and npm mirrors against a fake index: links rewritten through the cache, hashes the
index promises checked on download."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import aiohttp
import pytest

from shipmate.cache.server import CacheServer
from shipmate.cache.testing import FakeUpstream, Fault
from tests.integration.cache_helpers import attempt, get, url, wait_idle

pytestmark = pytest.mark.integration

WHEEL = os.urandom(50_000)
SDIST = os.urandom(40_000)


def pypi_page(up: FakeUpstream) -> bytes:
    sha_w = hashlib.sha256(WHEEL).hexdigest()
    sha_s = hashlib.sha256(SDIST).hexdigest()
    return (
        "<!DOCTYPE html><html><body>\n"
        f'<a href="http://{up.authority}/files/demo-1.0-py3-none-any.whl#sha256={sha_w}">'
        "demo-1.0-py3-none-any.whl</a><br/>\n"
        f'<a href="../../../files/demo-1.0.tar.gz#sha256={sha_s}">demo-1.0.tar.gz</a>\n'
        "</body></html>\n").encode()


async def test_pypi_simple_page_rewritten_and_files_verified(
        cache: CacheServer, fake: FakeUpstream, http: aiohttp.ClientSession) -> None:
    fake.files["/pypi-up/simple/demo/"] = pypi_page(fake)
    fake.files["/files/demo-1.0-py3-none-any.whl"] = WHEEL
    fake.files["/files/demo-1.0.tar.gz"] = SDIST
    fake.faults["/files/demo-1.0-py3-none-any.whl"] = Fault("wrong", times=1)
    status, page, headers = await get(http, url(cache, "/pypi/simple/demo"))
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    base = f"http://127.0.0.1:{cache.port}/pypi/files/http/{fake.authority}/files/"
    sha_w = hashlib.sha256(WHEEL).hexdigest()
    assert f'href="{base}demo-1.0-py3-none-any.whl#sha256={sha_w}"'.encode() in page
    assert f'href="{base}demo-1.0.tar.gz#sha256='.encode() in page  # relative link resolved
    status, got = await attempt(http, base + "demo-1.0-py3-none-any.whl")
    assert status != 200 or got != WHEEL  # the wrong bytes never completed
    await wait_idle(cache)
    assert cache.snapshot()["verify_failures"] == 1
    assert (await attempt(http, base + "demo-1.0-py3-none-any.whl")) == (200, WHEEL)
    assert (await attempt(http, base + "demo-1.0.tar.gz")) == (200, SDIST)
    pypi = cache.snapshot()["formats"]["pypi"]
    assert (pypi["misses"] >= 3 and pypi["errors"] == 0) or pypi["requests"] >= 4


async def test_pypi_json_variant(cache: CacheServer, fake: FakeUpstream,
                                 http: aiohttp.ClientSession) -> None:
    doc = {"meta": {"api-version": "1.1"}, "name": "demo", "files": [{
        "filename": "demo-1.0-py3-none-any.whl",
        "url": f"http://{fake.authority}/files/demo-1.0-py3-none-any.whl",
        "hashes": {"sha256": hashlib.sha256(WHEEL).hexdigest()}}]}
    fake.files["/pypi-up/simple/demo/"] = json.dumps(doc).encode()
    fake.files["/files/demo-1.0-py3-none-any.whl"] = WHEEL
    accept = ("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.1,"
              " text/html;q=0.01")
    status, body, headers = await get(http, url(cache, "/pypi/simple/demo/"),
                                      headers={"Accept": accept})
    assert status == 200 and headers["Content-Type"].startswith("application/vnd.pypi")
    file_url = json.loads(body)["files"][0]["url"]
    assert file_url.startswith(f"http://127.0.0.1:{cache.port}/pypi/files/http/")
    assert (await attempt(http, file_url)) == (200, WHEEL)
    assert fake.headers_seen[0]["Accept"].startswith("application/vnd.pypi.simple.v1+json")


async def test_pep658_metadata_checked_against_the_page(
        cache: CacheServer, fake: FakeUpstream, http: aiohttp.ClientSession) -> None:
    metadata = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
    wheel = f"http://{fake.authority}/files/demo-1.0-py3-none-any.whl"
    fake.files["/pypi-up/simple/demo/"] = (
        f'<a href="{wheel}#sha256={hashlib.sha256(WHEEL).hexdigest()}" '
        f'data-core-metadata="sha256={hashlib.sha256(metadata).hexdigest()}">w</a>').encode()
    fake.files["/files/demo-1.0-py3-none-any.whl.metadata"] = metadata
    fake.faults["/files/demo-1.0-py3-none-any.whl.metadata"] = Fault("wrong", times=1)
    assert (await get(http, url(cache, "/pypi/simple/demo/")))[0] == 200
    target = (f"http://127.0.0.1:{cache.port}/pypi/files/http/{fake.authority}"
              "/files/demo-1.0-py3-none-any.whl.metadata")
    status, got = await attempt(http, target)
    assert status != 200 or got != metadata  # the altered bytes never completed
    await wait_idle(cache)
    assert cache.snapshot()["verify_failures"] == 1
    assert (await attempt(http, target)) == (200, metadata)
    assert cache.snapshot()["verified"] >= 1


def npm_doc(up: FakeUpstream, name: str, tarball: bytes) -> bytes:
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    short = name.rsplit("/", 1)[-1]
    return json.dumps({"name": name, "dist-tags": {"latest": "1.0.0"}, "versions": {"1.0.0": {
        "name": name, "version": "1.0.0", "dist": {
            "integrity": integrity,
            "tarball": f"http://{up.authority}/npm-up/{name}/-/{short}-1.0.0.tgz"}}}}).encode()


async def test_npm_metadata_rewritten_and_integrity_checked(
        cache: CacheServer, fake: FakeUpstream, http: aiohttp.ClientSession) -> None:
    tgz = os.urandom(30_000)
    fake.files["/npm-up/demo"] = npm_doc(fake, "demo", tgz)
    fake.files["/npm-up/demo/-/demo-1.0.0.tgz"] = tgz
    fake.faults["/npm-up/demo/-/demo-1.0.0.tgz"] = Fault("wrong", times=1)
    status, body, _ = await get(http, url(cache, "/npm/demo"))
    assert status == 200
    tarball = json.loads(body)["versions"]["1.0.0"]["dist"]["tarball"]
    assert tarball == (f"http://127.0.0.1:{cache.port}/npm/_files/http/{fake.authority}"
                       "/npm-up/demo/-/demo-1.0.0.tgz")
    status, got = await attempt(http, tarball)
    assert status != 200 or got != tgz
    await wait_idle(cache)
    assert (await attempt(http, tarball)) == (200, tgz)
    assert (await get(http, tarball))[2]["X-Cache"] == "HIT"


async def test_npm_scoped_package(cache: CacheServer, fake: FakeUpstream,
                                  http: aiohttp.ClientSession) -> None:
    tgz = os.urandom(1000)
    fake.files["/npm-up/@scope%2Fpkg"] = npm_doc(fake, "@scope/pkg", tgz)
    status, body, _ = await get(http, url(cache, "/npm/@scope%2fpkg"))
    assert status == 200 and json.loads(body)["name"] == "@scope/pkg"


async def test_mirror_host_header_cannot_inject(cache: CacheServer,
                                                fake: FakeUpstream,
                                                http: aiohttp.ClientSession) -> None:
    fake.files["/pypi-up/simple/demo/"] = pypi_page(fake)
    _, page, _ = await get(http, url(cache, "/pypi/simple/demo/"),
                           headers={"Host": 'evil"><script>'})
    assert b"<script>" not in page and f"http://127.0.0.1:{cache.port}/pypi/".encode() in page
