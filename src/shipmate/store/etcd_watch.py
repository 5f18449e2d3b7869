"""Prefix watches on etcd that survive member failures.

Each watch runs one gRPC stream in a background task. Events are queued as they arrive and
``next_rev`` remembers the revision after the last one received. When the stream breaks (the
member died, restarted, lost its leader, or keepalive pings went unanswered) the task opens a
new stream on the next reachable member starting at ``next_rev``. etcd never splits one
revision across two responses, so this delivers every event exactly once, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aetcd import rpc

from shipmate.clock import within
from shipmate.errors import CompactedError, StoreError
from shipmate.store.base import Event, Watch
from shipmate.store.etcd_codec import Codec
from shipmate.store.etcd_conn import REQUIRE_LEADER, STREAM_END, Connection, send_first

_END = object()
_PERMANENT = {"INVALID_ARGUMENT", "PERMISSION_DENIED", "UNAUTHENTICATED", "UNIMPLEMENTED",
              "FAILED_PRECONDITION", "OUT_OF_RANGE"}


def _permanent(exc: Any) -> bool:
    """Errors that another member would repeat: no point reconnecting."""
    return isinstance(exc, rpc.AioRpcError) and exc.code().name in _PERMANENT


class EtcdWatch(Watch):
    """An open watch on keys under one prefix (see :meth:`EtcdStore.watch`)."""

    def __init__(self, conn: Connection, codec: Codec, prefix: str, start_revision: int,
                 *, give_up_after: float, on_close: Callable[[EtcdWatch], None] | None = None,
                 ) -> None:
        self._conn = conn
        self._on_close = on_close
        self._codec = codec
        self._key, self._range_end = codec.span(prefix, prefix=True)
        self.next_rev = start_revision
        self._give_up_after = give_up_after
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._created: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._last_ok = 0.0  # loop time of the last response from etcd
        self.reconnects = 0  # how many times the stream was reopened (for tests and status)

    async def start(self) -> None:
        """Open the stream; return once etcd confirmed the watch."""
        self._task = asyncio.create_task(self._run(), name=f"etcd-watch {self._key!r}")
        try:
            await within(asyncio.shield(self._created), self._conn.timeout)
        except TimeoutError:
            await self.close()
            raise self._conn.unreachable() from None
        except BaseException:
            await self.close()
            raise

    async def __anext__(self) -> Event:
        if self._closed and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)  # later calls end too
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._queue.put_nowait(item)  # a broken watch stays broken
            raise item
        assert isinstance(item, Event)
        return item

    async def close(self) -> None:
        """Stop the stream; pending and later iteration ends."""
        if self._closed:
            return
        self._closed = True
        if self._on_close is not None:
            self._on_close(self)
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])  # not `await task`: that would swallow our own cancel
        self._queue.put_nowait(_END)

    def _fail(self, error: StoreError) -> None:
        if not self._created.done():
            self._created.set_exception(error)
            self._created.exception()  # retrieved: start() re-raises it
        self._queue.put_nowait(error)

    async def _run(self) -> None:
        """Open streams until closed or a terminal error; the error goes to the consumer."""
        loop = asyncio.get_running_loop()
        healthy_at = loop.time()
        while True:
            member = None
            try:
                member = await self._conn.pick(healthy_at + self._give_up_after)
                await self._stream(member)  # returns on a clean end (server shutdown): reopen
            except StoreError as err:  # compacted, cancelled, or no member within the budget
                self._fail(err)
                return
            except (rpc.RpcError, rpc.BaseError) as exc:
                healthy_at = max(healthy_at, self._last_ok)
                if _permanent(exc) or loop.time() - healthy_at > self._give_up_after:
                    self._fail(self._conn.translate(exc))
                    return
            except Exception as exc:  # a bug must not leave the consumer waiting forever
                self._fail(self._conn.translate(exc))
                return
            healthy_at = max(healthy_at, self._last_ok)
            if member is not None:
                self._conn.failed(member)
            self.reconnects += 1
            await asyncio.sleep(0.05)

    async def _stream(self, member: Any) -> None:
        """One stream on ``member``, from ``next_rev``, until it breaks."""
        call = member.watch.Watch(metadata=REQUIRE_LEADER)  # reader/writer: see send_first
        loop = asyncio.get_running_loop()
        create = rpc.WatchCreateRequest(
            key=self._key, range_end=self._range_end, start_revision=self.next_rev,
            prev_kv=True, progress_notify=True,
        )
        try:
            await send_first(call, rpc.WatchRequest(create_request=create), self._conn.timeout)
            while (resp := await call.read()) is not STREAM_END:
                self._last_ok = loop.time()
                self._handle(resp)
        finally:
            call.cancel()

    def _handle(self, resp: Any) -> None:
        if resp.compact_revision:
            raise CompactedError(self.next_rev, resp.compact_revision)
        if resp.canceled:
            raise StoreError(f"etcd cancelled the watch: {resp.cancel_reason or 'no reason'}",
                             hint="re-read the current state and watch again")
        if resp.created and not self._created.done():
            self._created.set_result(None)
        for pb in resp.events:
            # After a reconnect, drop anything already delivered (defensive: etcd starts at
            # next_rev, so this never triggers unless a member misbehaves).
            if pb.kv.mod_revision >= self.next_rev:
                self._queue.put_nowait(self._codec.event(pb))
        if resp.events:
            self.next_rev = max(self.next_rev, resp.events[-1].kv.mod_revision + 1)
