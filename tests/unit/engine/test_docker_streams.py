"""The blocking <-> async stream bridges used by the Docker adapter."""

from __future__ import annotations

import asyncio
import threading

import pytest

from shipmate.engine.docker_streams import aiter_blocking, blocking_chunks, split_lines
from shipmate.errors import EngineError


def convert(exc: BaseException) -> BaseException:
    return EngineError(f"mapped: {exc}")


async def test_items_arrive_in_order_off_the_loop_thread():
    loop_thread = threading.get_ident()
    threads = set()

    def gen():
        for i in range(5):
            threads.add(threading.get_ident())
            yield i

    got = [x async for x in aiter_blocking(lambda: (gen(), None), convert)]
    assert got == [0, 1, 2, 3, 4]
    assert loop_thread not in threads


async def test_errors_pass_through_the_mapper():
    def gen():
        yield 1
        raise ValueError("engine went away")

    with pytest.raises(EngineError, match="mapped: engine went away"):
        async for _ in aiter_blocking(lambda: (gen(), None), convert):
            pass


class Blocking:
    """A stream blocked until closed, like docker-py's CancellableStream on an idle socket."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    def __iter__(self):
        return self

    def __next__(self):
        self.closed.wait(5)
        raise StopIteration

    def close(self) -> None:
        self.closed.set()


async def test_cancelling_the_consumer_closes_the_stream_and_loop_stays_responsive():
    stream = Blocking()

    async def consume():
        async for _ in aiter_blocking(lambda: (stream, stream), convert):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)  # the loop is free while the stream blocks on its thread
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stream.closed.wait(1)


async def test_blocking_chunks_pull_from_an_async_iterator():
    async def source():
        for part in (b"ab", b"", b"cd"):
            yield part

    loop = asyncio.get_running_loop()
    got = await asyncio.to_thread(lambda: list(blocking_chunks(source(), loop)))
    assert got == [b"ab", b"cd"]


def test_split_lines_keeps_partial_lines():
    chunks = [b"one\ntw", b"o\r\nth", "r\u00e9e".encode()]
    assert list(split_lines(iter(chunks))) == ["one", "two", "thr\u00e9e"]
