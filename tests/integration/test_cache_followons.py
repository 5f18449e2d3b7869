"""Follow-on hits: the worker that sent a large hit answers the connection's next plain GET of
a cached body itself (shipmate.cache.followloop); anything else still reaches aiohttp and is
answered exactly as on a fresh connection."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from shipmate.cache import followloop
from shipmate.cache.routes import cached_route
from shipmate.cache.server import CacheServer
from shipmate.cache.testing import FakeUpstream
from tests.integration.cache_helpers import (
    BIG,
    Responses,
    get,
    request,
    reset,
    running_cache,
    url,
)

pytestmark = pytest.mark.integration

LARGE = 3 * 2**20


class Shelf:
    """A cache holding two large bodies and a small one, already fetched."""

    def __init__(self, cache: CacheServer, fake: FakeUpstream) -> None:
        self.cache = cache
        self.fake = fake
        self.bodies: dict[str, bytes] = {}

    async def add(self, http: aiohttp.ClientSession, name: str, body: bytes) -> str:
        path = f"/d/pool/{name}"
        self.fake.files[path] = body
        target = url(self.cache, f"/{self.fake.authority}{path}")
        status, got, _ = await get(http, target)
        assert (status, got == body) == (200, True)
        self.bodies[target] = body
        return target

    def stats(self) -> dict[str, int]:
        snap = self.cache.snapshot()
        return {"follow_ons": snap["follow_ons"], **{
            k: snap["formats"]["apt"][k] for k in ("requests", "hits", "bytes_from_cache")}}


@pytest.fixture
async def shelf(tmp_path: Path, fake: FakeUpstream, http: aiohttp.ClientSession
                ) -> AsyncIterator[tuple[Shelf, str, str, str]]:
    """(shelf, a large body's URL, another's, a small body's URL)."""
    async with running_cache(tmp_path, fake) as cache:
        shelf = Shelf(cache, fake)
        one = await shelf.add(http, "one_1.0_amd64.deb", os.urandom(LARGE))
        two = await shelf.add(http, "two_1.0_amd64.deb", os.urandom(LARGE + 12345))
        small = await shelf.add(http, "small_1.0_all.deb", os.urandom(5000))
        fake.files["/d/pool/uncached_1.0_all.deb"] = os.urandom(LARGE)
        yield shelf, one, two, small


def connect(cache: CacheServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", cache.port), timeout=20)


@contextlib.contextmanager
def after_a_hit(store: Shelf, target: str) -> Iterator[tuple[socket.socket, Responses]]:
    """A connection on which the large body ``target`` was just answered: its worker now
    waits for the connection's next request."""
    with connect(store.cache) as sock:
        responses = Responses(sock)
        sock.sendall(request(target))
        assert responses.next()[1] == store.bodies[target]
        yield sock, responses


def fields(head: bytes) -> dict[str, str]:
    """A response head's fields but Date, and its status line."""
    lines = head.decode().split("\r\n")
    out = dict(line.split(": ", 1) for line in lines[1:])
    out.pop("Date")
    return {"status": lines[0], **out}


async def test_keep_alive_hits_are_answered_by_the_worker_and_counted(
        shelf: tuple[Shelf, str, str, str]) -> None:
    store, one, two, _ = shelf
    before = store.stats()
    order = [one, two, one, two, two, one]
    proxy_form = request(one).replace(b"GET /", b"GET http://", 1)  # as apt's Acquire::http::Proxy

    def one_connection() -> list[tuple[bytes, bytes]]:
        with connect(store.cache) as sock:
            responses = Responses(sock)
            got = []
            for n, target in enumerate(order):
                sock.sendall(proxy_form if n == len(order) - 1 else request(target))
                got.append(responses.next())
            return got

    got = await asyncio.to_thread(one_connection)
    assert [body == store.bodies[t] for (_, body), t in zip(got, order, strict=True)] == [
        True] * len(order)
    after = store.stats()
    assert {k: after[k] - before[k] for k in after} == {
        "follow_ons": 5, "requests": 6, "hits": 6,
        "bytes_from_cache": sum(len(store.bodies[t]) for t in order)}
    # a follow-on's head is the one aiohttp sends for the same body
    assert fields(got[2][0]) == fields(got[0][0])
    assert fields(got[3][0]) == fields(got[1][0])
    entry = store.cache.storage.get(cached_route(
        "/" + two.split("/", 3)[3], "", store.cache.routes).key)
    assert entry is not None and time.time() - entry.accessed_at < 5


# each follows a large hit on its connection; the answer must be the one a fresh
# connection gets (aiohttp answers it)
FOLLOW_UPS = {
    "range": lambda t: request(t, "Range: bytes=100-199"),
    "if-none-match": lambda t: request(t, 'If-None-Match: "nope"'),
    "head": lambda t: request(t, method="HEAD"),
    "small body": lambda t: request(t.replace("two_1.0_amd64", "small_1.0_all")),
    "not cached": lambda t: request(t.replace("two_1.0_amd64", "uncached_1.0_all")),
    "traversal": lambda t: request(t.replace("/pool/two", "/pool/%2e%2e/%2e%2e/two")),
    "not allowlisted": lambda t: b"GET /evil.example/x.deb HTTP/1.1\r\nHost: x\r\n\r\n",
    "admin page": lambda t: b"GET /_shipmate/cache/stats.json HTTP/1.1\r\nHost: x\r\n\r\n",
    "HTTP/1.0": lambda t: request(t).replace(b"HTTP/1.1", b"HTTP/1.0"),
}


@pytest.mark.parametrize("case", sorted(FOLLOW_UPS))
async def test_other_requests_after_a_hit_are_answered_as_on_a_fresh_connection(
        shelf: tuple[Shelf, str, str, str], case: str) -> None:
    store, one, two, _ = shelf
    ask = FOLLOW_UPS[case](two)
    head_only = case == "head"

    def fresh() -> tuple[bytes, bytes]:
        with connect(store.cache) as sock:
            sock.sendall(ask)
            return Responses(sock).next(head_only=head_only)

    def following() -> tuple[bytes, bytes]:
        with after_a_hit(store, one) as (sock, responses):
            time.sleep(0.01)
            sock.sendall(ask)
            return responses.next(head_only=head_only)

    before = store.stats()["follow_ons"]
    head, body = await asyncio.to_thread(following)
    assert store.stats()["follow_ons"] == before  # none of these is a follow-on hit
    expected_head, expected_body = await asyncio.to_thread(fresh)
    if case == "admin page":  # the counts in it moved on
        assert (fields(head)["status"], body[:1]) == (fields(expected_head)["status"], b"{")
        return
    got, expected = fields(head), fields(expected_head)
    if case == "not cached":  # the first asking fetched it: a MISS, streamed as it came
        assert (got["status"], got["X-Cache"], expected["X-Cache"]) == (
            expected["status"], "MISS", "HIT")
        assert body == expected_body
        return
    assert (got, body) == (expected, expected_body)


async def test_a_request_head_in_two_parts_is_left_to_aiohttp(
        shelf: tuple[Shelf, str, str, str]) -> None:
    store, one, two, _ = shelf

    def split() -> bytes:
        with after_a_hit(store, one) as (sock, responses):
            ask = request(two)
            sock.sendall(ask[:20])
            time.sleep(0.3)  # longer than the worker waits for a head
            sock.sendall(ask[20:])
            return responses.next()[1]

    assert await asyncio.to_thread(split) == store.bodies[two]


async def test_requests_sent_together_after_a_hit_are_answered_in_order(
        shelf: tuple[Shelf, str, str, str]) -> None:
    store, one, two, small = shelf
    before = store.stats()["follow_ons"]

    def together() -> list[bytes]:
        with after_a_hit(store, one) as (sock, responses):
            time.sleep(0.01)
            sock.sendall(request(two) + request(one) + request(small) + request(two))
            return [responses.next()[1] for _ in range(4)]

    got = await asyncio.to_thread(together)
    assert got == [store.bodies[t] for t in (two, one, small, two)]
    assert store.stats()["follow_ons"] - before >= 2  # two and one; small goes to aiohttp


async def test_connection_close_is_answered_then_the_connection_closes(
        shelf: tuple[Shelf, str, str, str]) -> None:
    store, one, two, _ = shelf

    def closing() -> tuple[bytes, bytes]:
        with after_a_hit(store, one) as (sock, responses):
            sock.sendall(request(two, "Connection: close"))
            body = responses.next()[1]
            return body, sock.recv(10)

    body, after = await asyncio.to_thread(closing)
    assert (body == store.bodies[two], after) == (True, b"")


async def test_a_follow_on_body_removed_meanwhile_is_fetched_again(
        shelf: tuple[Shelf, str, str, str]) -> None:
    store, one, two, _ = shelf
    key = cached_route("/" + two.split("/", 3)[3], "", store.cache.routes).key
    gets = store.fake.gets["/d/pool/two_1.0_amd64.deb"]

    def hit_then_two() -> tuple[bytes, bytes]:
        with after_a_hit(store, one) as (sock, responses):
            store.cache.storage.remove(key)
            sock.sendall(request(two))
            return responses.next()

    head, body = await asyncio.to_thread(hit_then_two)
    assert (body == store.bodies[two], fields(head)["X-Cache"]) == (True, "MISS")
    assert store.fake.gets["/d/pool/two_1.0_amd64.deb"] == gets + 1


async def test_a_stalled_follow_on_is_handed_back_without_holding_the_worker(
        one_worker: None, shelf: tuple[Shelf, str, str, str],
        http: aiohttp.ClientSession) -> None:
    store, one, _, _ = shelf
    big = await store.add(http, "big_1.0_amd64.deb", os.urandom(BIG))

    def stall_on_the_second() -> bytes:
        with after_a_hit(store, one) as (sock, responses):
            sock.sendall(request(big))
            return responses.next(pause=3.0)[1]  # reads nothing for 3 s

    def quick() -> tuple[float, bytes]:
        with connect(store.cache) as sock:
            start = time.monotonic()
            sock.sendall(request(one))
            return time.monotonic() - start, Responses(sock).next()[1]

    before = store.stats()
    stalled = asyncio.create_task(asyncio.to_thread(stall_on_the_second))
    await asyncio.sleep(0.8)  # the stalled body's send has timed out by now
    took, got = await asyncio.to_thread(quick)
    assert got == store.bodies[one]
    assert took < 2.5, f"the second client waited {took:.1f} s behind a stalled one"
    assert await stalled == store.bodies[big]
    after = store.stats()
    assert (after["follow_ons"] - before["follow_ons"],
            after["bytes_from_cache"] - before["bytes_from_cache"]) == (
        1, 2 * LARGE + BIG)


async def test_a_worker_waiting_for_a_request_gives_way_at_once_to_another_body(
        one_worker: None, shelf: tuple[Shelf, str, str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    store, one, two, _ = shelf
    monkeypatch.setattr(followloop, "IDLE_SECONDS", 30.0)  # no idle timeout to wait out

    def idle_after_a_hit() -> None:
        with after_a_hit(store, one):
            time.sleep(5)  # the only worker waits for this connection's next request

    def quick() -> tuple[float, bytes]:
        with connect(store.cache) as sock:
            start = time.monotonic()
            sock.sendall(request(two))
            return time.monotonic() - start, Responses(sock).next()[1]

    idle = asyncio.create_task(asyncio.to_thread(idle_after_a_hit))
    await asyncio.sleep(0.5)
    took, got = await asyncio.to_thread(quick)
    assert got == store.bodies[two]
    assert took < 2.0, f"the second client waited {took:.1f} s behind an idle connection"
    await idle


async def test_a_slow_client_keeps_its_worker_while_no_other_body_waits(
        shelf: tuple[Shelf, str, str, str], http: aiohttp.ClientSession) -> None:
    store, one, _, _ = shelf
    big = await store.add(http, "big_1.0_amd64.deb", os.urandom(BIG))
    before = store.stats()["follow_ons"]

    def slow() -> list[bytes]:
        with after_a_hit(store, one) as (sock, responses):
            sock.sendall(request(big))
            got = [responses.next(pause=0.5)[1]]  # far past the 50 ms send timeout
            time.sleep(0.5)  # a pause between requests, shorter than a worker waits
            sock.sendall(request(one))
            got.append(responses.next()[1])
            return got

    assert await asyncio.to_thread(slow) == [store.bodies[big], store.bodies[one]]
    # both answered by the worker: a handoff would have sent the third through aiohttp
    assert store.stats()["follow_ons"] - before == 2


async def test_a_client_gone_mid_follow_on_leaves_the_server_serving(
        shelf: tuple[Shelf, str, str, str], http: aiohttp.ClientSession) -> None:
    store, one, two, _ = shelf
    big = await store.add(http, "big_1.0_amd64.deb", os.urandom(BIG))

    def walk_away() -> None:
        with after_a_hit(store, one) as (sock, _):
            sock.sendall(request(big))
            sock.recv(100_000)
            reset(sock)

    for _ in range(3):
        await asyncio.to_thread(walk_away)
    status, got, _ = await get(http, two)
    assert (status, got == store.bodies[two]) == (200, True)


async def test_the_server_stops_while_a_worker_holds_a_connection(
        tmp_path: Path, fake: FakeUpstream, http: aiohttp.ClientSession) -> None:
    fake.files["/d/pool/one_1.0_amd64.deb"] = body = os.urandom(LARGE)
    sock = None
    async with running_cache(tmp_path, fake) as cache:
        target = url(cache, f"/{fake.authority}/d/pool/one_1.0_amd64.deb")
        assert (await get(http, target))[1] == body
        sock = connect(cache)
        sock.sendall(request(target))
        assert (await asyncio.to_thread(Responses(sock).next))[1] == body
        started = time.monotonic()
    assert time.monotonic() - started < 5
    with sock:
        assert sock.recv(10) == b""  # closed by the server
