"""Fault injection: whatever upstream does wrong, nothing corrupt is cached, the client sees an
error and the next request retries cleanly."""

from __future__ import annotations

import hashlib
import lzma
import os
from pathlib import Path

import aiohttp
import pytest

from shipmate.cache.server import CacheServer
from shipmate.cache.testing import FakeUpstream, Fault
from tests.integration.cache_helpers import (
    assert_nothing_cached,
    attempt,
    get,
    running_cache,
    url,
    wait_idle,
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("mode", ["truncate", "error500", "stall", "reset", "wrong"])
async def test_fault_then_clean_retry(tmp_path: Path, fake: FakeUpstream,
                                      http: aiohttp.ClientSession, mode: str) -> None:
    body = os.urandom(600_000)
    digest = hashlib.sha256(body).hexdigest()
    path = f"/d/dists/bookworm/main/binary-amd64/by-hash/SHA256/{digest}"
    fake.files[path] = body
    fake.faults[path] = Fault(mode, times=1)
    async with running_cache(tmp_path, fake) as cache:
        target = url(cache, f"/{fake.authority}{path}")
        status, got = await attempt(http, target)
        assert status != 200 or got != body
        if mode == "error500":
            assert status == 500  # relayed, not cached
        await wait_idle(cache)
        assert_nothing_cached(cache, tmp_path)
        status, got = await attempt(http, target)
        assert (status, got == body) == (200, True)
        assert fake.gets[path] == 2
        assert (await get(http, target))[2]["X-Cache"] == "HIT"


async def test_stall_times_out_every_waiting_client(tmp_path: Path, fake: FakeUpstream,
                                                    http: aiohttp.ClientSession) -> None:
    import asyncio

    fake.files["/d/pool/s.deb"] = os.urandom(300_000)
    fake.faults["/d/pool/s.deb"] = Fault("stall", times=1)
    async with running_cache(tmp_path, fake, cache_upstream_timeout=0.5) as cache:
        target = url(cache, f"/{fake.authority}/d/pool/s.deb")
        results = await asyncio.wait_for(
            asyncio.gather(*(attempt(http, target) for _ in range(5))), 10)
        assert all(r == (None, None) or r[0] in (502, 504) for r in results)
        await wait_idle(cache)
        assert_nothing_cached(cache, tmp_path)
        assert cache.snapshot()["formats"]["apt"]["upstream_fetches"] == 1


def release_for(entries: dict[str, bytes]) -> bytes:
    lines = ["Origin: Debian", "Suite: bookworm", "SHA256:"]
    for name, data in entries.items():
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {name}")
    return ("\n".join(lines) + "\n").encode()


async def refused_once_then_kept(http: aiohttp.ClientSession, cache: CacheServer,
                                 target: str, body: bytes) -> None:
    """``target``, served wrong once upstream: the client never gets it whole, it is not
    kept, one check fails; then the retry gets it."""
    status, got = await attempt(http, target)
    assert status != 200 or got != body  # the wrong bytes were never completed
    await wait_idle(cache)
    name = target.rsplit("/", 1)[1]
    assert all(not e.url.endswith("/" + name) for e in cache.storage.entries())
    assert cache.snapshot()["verify_failures"] == 1
    status, got = await attempt(http, target)
    assert (status, got == body) == (200, True)


async def test_deb_verified_against_packages_from_by_hash_index(
        tmp_path: Path, fake: FakeUpstream, http: aiohttp.ClientSession) -> None:
    deb = os.urandom(200_000)
    stanza = (f"Package: hello\nVersion: 1.0\nFilename: pool/main/h/hello/hello_1.0_amd64.deb\n"
              f"Size: {len(deb)}\nSHA256: {hashlib.sha256(deb).hexdigest()}\n\n")
    packages = lzma.compress(("Package: other\nFilename: pool/o.deb\nSHA256: 00\n\n" + stanza)
                             .encode())
    digest = hashlib.sha256(packages).hexdigest()
    fake.files["/d/dists/bookworm/InRelease"] = release_for(
        {"main/binary-amd64/Packages.xz": packages})
    fake.files[f"/d/dists/bookworm/main/binary-amd64/by-hash/SHA256/{digest}"] = packages
    deb_path = "/d/pool/main/h/hello/hello_1.0_amd64.deb"
    fake.files[deb_path] = deb
    fake.faults[deb_path] = Fault("wrong", times=1)
    async with running_cache(tmp_path, fake) as cache:
        base = url(cache, f"/{fake.authority}")
        assert (await get(http, base + "/d/dists/bookworm/InRelease"))[0] == 200
        by_hash = f"{base}/d/dists/bookworm/main/binary-amd64/by-hash/SHA256/{digest}"
        assert (await get(http, by_hash))[1] == packages
        await refused_once_then_kept(http, cache, base + deb_path, deb)


@pytest.mark.parametrize("named", ["by-hash", "plain"])
async def test_source_files_verified_against_the_sources_index(
        tmp_path: Path, fake: FakeUpstream, http: aiohttp.ClientSession, named: str) -> None:
    dsc, orig = b"Format: 3.0 (quilt)\nSource: hello\n", os.urandom(300_000)
    stanza = (f"Package: hello\nDirectory: pool/main/h/hello\nChecksums-Sha256:\n"
              f" {hashlib.sha256(dsc).hexdigest()} {len(dsc)} hello_1.0.dsc\n"
              f" {hashlib.sha256(orig).hexdigest()} {len(orig)} hello_1.0.orig.tar.gz\n\n")
    sources = lzma.compress(("Package: other\nDirectory: pool/o\nChecksums-Sha256:\n"
                             " 00 1 o.dsc\n\n" + stanza).encode())
    digest = hashlib.sha256(sources).hexdigest()
    fake.files["/d/dists/bookworm/InRelease"] = release_for({"main/source/Sources.xz": sources})
    index = (f"/d/dists/bookworm/main/source/by-hash/SHA256/{digest}" if named == "by-hash"
             else "/d/dists/bookworm/main/source/Sources.xz")
    fake.files[index] = sources
    pool = "/d/pool/main/h/hello/"
    fake.files[pool + "hello_1.0.dsc"] = dsc
    fake.files[pool + "hello_1.0.orig.tar.gz"] = orig
    fake.faults[pool + "hello_1.0.orig.tar.gz"] = Fault("wrong", times=1)
    async with running_cache(tmp_path, fake) as cache:
        base = url(cache, f"/{fake.authority}")
        assert (await get(http, base + "/d/dists/bookworm/InRelease"))[0] == 200
        assert (await get(http, base + index))[1] == sources
        await refused_once_then_kept(http, cache, base + pool + "hello_1.0.orig.tar.gz", orig)
        assert (await get(http, base + pool + "hello_1.0.dsc"))[1] == dsc
        await wait_idle(cache)
        assert cache.snapshot()["verified"] == 3  # the Sources index, the .dsc, the tarball


async def test_an_index_the_release_lists_is_verified_by_its_plain_name(
        tmp_path: Path, fake: FakeUpstream, http: aiohttp.ClientSession) -> None:
    translation = os.urandom(100_000)
    fake.files["/d/dists/bookworm/InRelease"] = release_for(
        {"main/i18n/Translation-en.bz2": translation})
    path = "/d/dists/bookworm/main/i18n/Translation-en.bz2"
    fake.files[path] = translation
    fake.faults[path] = Fault("wrong", times=1)
    async with running_cache(tmp_path, fake) as cache:
        base = url(cache, f"/{fake.authority}")
        assert (await get(http, base + "/d/dists/bookworm/InRelease"))[0] == 200
        await refused_once_then_kept(http, cache, base + path, translation)


async def test_an_index_its_release_does_not_vouch_for_teaches_no_hashes(
        tmp_path: Path, fake: FakeUpstream, http: aiohttp.ClientSession) -> None:
    deb = os.urandom(200_000)
    deb_path = "/d/pool/main/h/hello/hello_1.0_amd64.deb"

    def packages_for(body: bytes) -> bytes:
        return lzma.compress(f"Package: hello\nFilename: pool/main/h/hello/hello_1.0_amd64.deb\n"
                             f"SHA256: {hashlib.sha256(body).hexdigest()}\n\n".encode())

    genuine, poisoned = packages_for(deb), packages_for(b"something else")
    index = "/d/dists/bookworm/main/binary-amd64/Packages.xz"
    fake.files["/d/dists/bookworm/InRelease"] = release_for(
        {"main/binary-amd64/Packages.xz": genuine})
    fake.files[index] = poisoned
    fake.files[deb_path] = deb
    async with running_cache(tmp_path, fake) as cache:
        base = url(cache, f"/{fake.authority}")
        assert (await get(http, base + "/d/dists/bookworm/InRelease"))[0] == 200
        status, got = await attempt(http, base + index)
        assert status != 200 or got != poisoned
        await wait_idle(cache)
        assert cache.snapshot()["verify_failures"] == 1
        assert all(not e.url.endswith("Packages.xz") for e in cache.storage.entries())
        # the poisoned index's hash for the .deb was never learned: the genuine .deb passes
        assert (await get(http, base + deb_path))[:2] == (200, deb)
        fake.files[index] = genuine
        assert (await get(http, base + index))[:2] == (200, genuine)
        assert cache.snapshot()["verify_failures"] == 1


async def test_upstream_error_pages_are_never_cached(
        tmp_path: Path, fake: FakeUpstream, http: aiohttp.ClientSession) -> None:
    async with running_cache(tmp_path, fake) as cache:
        target = url(cache, f"/{fake.authority}/d/pool/missing.deb")
        assert (await get(http, target))[0] == 404
        fake.files["/d/pool/missing.deb"] = b"now here"
        status, got, _ = await get(http, target)
        assert (status, got) == (200, b"now here")
