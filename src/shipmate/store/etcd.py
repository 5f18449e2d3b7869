"""The etcd backend: the store interface over etcd's v3 gRPC API (etcd 3.4 and newer).

Talks gRPC through the protobuf stubs that ``aetcd`` ships (``aetcd.rpc``), with our own
connection handling (:mod:`shipmate.store.etcd_conn`: failover, keepalive, error mapping) and
watches (:mod:`shipmate.store.etcd_watch`: resume after reconnects). Revisions, versions and
lease IDs are etcd's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Sequence
from typing import Any

from aetcd import rpc

from shipmate.errors import LeaseNotFoundError, StoreError
from shipmate.store import etcd_members
from shipmate.store.base import Compare, KeyValue, Op, Store, TxnResult, Watch
from shipmate.store.etcd_codec import Codec
from shipmate.store.etcd_conn import (
    REQUIRE_LEADER,
    STREAM_END,
    Connection,
    Member,
    Retry,
    Tls,
    send_first,
)
from shipmate.store.etcd_watch import EtcdWatch


class EtcdStore(Store):
    """A :class:`~shipmate.store.base.Store` kept in an etcd cluster."""

    name = "etcd"

    def __init__(self, conn: Connection, prefix: str = "") -> None:
        self._conn = conn
        self._codec = Codec(prefix)
        self._watches: set[EtcdWatch] = set()
        # lease ID -> loop time it expires at, as far as this client knows; etcd reports the
        # time left in whole seconds only, this refines it to milliseconds.
        self._expiry: dict[int, float] = {}
        self._sync: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, endpoints: list[str], *, prefix: str = "", timeout: float = 5.0,
                      tls: Tls | None = None, sync_interval: float = 0.0) -> EtcdStore:
        """Connect to an etcd cluster through any of ``endpoints`` (``http://host:port``, or
        ``https://`` with ``tls``); ``prefix`` namespaces every key. With ``sync_interval``
        the client follows the cluster's membership (members added or removed later).
        Raises StoreError when no member answers."""
        store = cls(Connection(endpoints, timeout, tls), prefix)
        try:
            await store.revision()
        except BaseException:
            await store.close()
            raise
        if sync_interval > 0:
            store._sync = asyncio.create_task(etcd_members.follow(
                store._conn, list(endpoints), sync_interval), name="etcd-member-sync")
        return store

    # membership -----------------------------------------------------------------------------

    async def members(self) -> list[etcd_members.EtcdMember]:
        """The etcd cluster's members, learners included."""
        return await etcd_members.members(self._conn)

    async def add_learner(self, peer_url: str) -> tuple[etcd_members.EtcdMember,
                                                        list[etcd_members.EtcdMember]]:
        """Add a learner at ``peer_url``; it and the members after the change."""
        return await etcd_members.add_learner(self._conn, peer_url)

    async def promote(self, member_id: int) -> None:
        """Promote a learner that has caught up."""
        await etcd_members.promote(self._conn, member_id)

    async def remove_member(self, member_id: int) -> None:
        """Remove a member."""
        await etcd_members.remove(self._conn, member_id)

    @property
    def endpoints(self) -> list[str]:
        """The members' gRPC targets, in failover order."""
        return list(self._conn.endpoints)

    @property
    def current_endpoint(self) -> str:
        """The member requests go to now."""
        return self._conn.current.endpoint

    # keys -----------------------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        """The current value of ``key``, or None."""
        resp = await self._range(rpc.RangeRequest(key=self._codec.key(key)))
        return self._codec.kv(resp.kvs[0]) if resp.kvs else None

    async def range(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Every key under ``prefix``, sorted by key, and the revision read at."""
        key, end = self._codec.span(prefix, prefix=True)
        resp = await self._range(rpc.RangeRequest(key=key, range_end=end))
        return [self._codec.kv(kv) for kv in resp.kvs], resp.header.revision

    async def revision(self) -> int:
        """The current store revision (a linearizable read)."""
        resp = await self._range(rpc.RangeRequest(key=b"\0", keys_only=True, limit=1))
        return int(resp.header.revision)

    async def put(self, key: str, value: bytes | str, *, lease: int = 0) -> int:
        """Write ``key``; returns etcd's new revision."""
        data = value.encode() if isinstance(value, str) else value
        req = rpc.PutRequest(key=self._codec.key(key), value=data, lease=lease)

        async def fn(m: Member, left: float) -> Any:
            return await m.kv.Put(req, timeout=left, metadata=REQUIRE_LEADER)

        resp = await self._conn.call(fn, Retry.IDEMPOTENT)
        return int(resp.header.revision)

    async def delete(self, key: str, *, prefix: bool = False) -> int:
        """Delete ``key`` (or every key under it); returns how many were deleted."""
        start, end = self._codec.span(key, prefix)
        req = rpc.DeleteRangeRequest(key=start, range_end=end)

        async def fn(m: Member, left: float) -> Any:
            return await m.kv.DeleteRange(req, timeout=left, metadata=REQUIRE_LEADER)

        resp = await self._conn.call(fn, Retry.IDEMPOTENT)
        return int(resp.deleted)

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op],
                  failure: Sequence[Op] = ()) -> TxnResult:
        """Atomically: if every compare holds, run ``success``, else ``failure``."""
        req = self._codec.txn(compares, success, failure)

        async def fn(m: Member, left: float) -> Any:
            return await m.kv.Txn(req, timeout=left, metadata=REQUIRE_LEADER)

        # Never resent after an ambiguous failure: a compare-and-swap applied twice would
        # report failure for a write that happened.
        resp = await self._conn.call(fn, Retry.ONCE)
        return TxnResult(
            succeeded=bool(resp.succeeded), revision=int(resp.header.revision),
            responses=tuple(self._codec.op_result(r) for r in resp.responses),
        )

    async def compact(self, revision: int) -> None:
        """Drop history before ``revision`` (already compacted: nothing to do)."""
        req = rpc.CompactionRequest(revision=revision, physical=True)

        async def fn(m: Member, left: float) -> None:
            try:
                await m.kv.Compact(req, timeout=left, metadata=REQUIRE_LEADER)
            except rpc.AioRpcError as exc:
                if "required revision has been compacted" not in (exc.details() or ""):
                    raise

        await self._conn.call(fn, Retry.IDEMPOTENT)

    async def _range(self, req: Any) -> Any:
        async def fn(m: Member, left: float) -> Any:
            return await m.kv.Range(req, timeout=left, metadata=REQUIRE_LEADER)

        return await self._conn.call(fn, Retry.SAFE)

    # watches --------------------------------------------------------------------------------

    async def watch(self, prefix: str, *, start_revision: int | None = None) -> Watch:
        """Watch keys under ``prefix`` from ``start_revision`` (default: after now). The watch
        follows member failures, resuming after the last event it received."""
        if start_revision is None:
            start_revision = await self.revision() + 1
        watch = EtcdWatch(self._conn, self._codec, prefix, max(1, start_revision),
                          give_up_after=max(15.0, 3 * self._conn.timeout),
                          on_close=self._watches.discard)
        await watch.start()
        self._watches.add(watch)
        return watch

    # leases ---------------------------------------------------------------------------------

    async def grant(self, ttl: float) -> int:
        """A new lease of ``ttl`` seconds, rounded up to whole seconds (etcd also raises it to
        its minimum, 2 s with default election settings)."""
        req = rpc.LeaseGrantRequest(TTL=max(1, math.ceil(ttl)))
        sent = asyncio.get_running_loop().time()

        async def fn(m: Member, left: float) -> Any:
            return await m.lease.LeaseGrant(req, timeout=left, metadata=REQUIRE_LEADER)

        resp = await self._conn.call(fn, Retry.ONCE)
        if resp.error:
            raise StoreError(f"etcd refused the lease: {resp.error}")
        self._expiry[resp.ID] = sent + resp.TTL
        return int(resp.ID)

    async def keepalive(self, lease: int) -> float:
        """Refresh ``lease`` to its full TTL; returns the TTL."""
        sent = asyncio.get_running_loop().time()

        async def fn(m: Member, left: float) -> Any:
            return await _keepalive_once(m, lease, left)

        ttl = await self._conn.call(fn, Retry.IDEMPOTENT)
        if ttl <= 0:
            self._expiry.pop(lease, None)
            raise LeaseNotFoundError(f"lease {lease:x} does not exist",
                                     hint="it expired or was revoked; grant a new one")
        self._expiry[lease] = sent + ttl
        return float(ttl)

    async def revoke(self, lease: int) -> None:
        """End ``lease`` now, deleting its keys; unknown leases are ignored."""
        self._expiry.pop(lease, None)
        req = rpc.LeaseRevokeRequest(ID=lease)

        async def fn(m: Member, left: float) -> None:
            await m.lease.LeaseRevoke(req, timeout=left, metadata=REQUIRE_LEADER)

        with contextlib.suppress(LeaseNotFoundError):
            await self._conn.call(fn, Retry.IDEMPOTENT)

    async def time_to_live(self, lease: int) -> float | None:
        """Seconds ``lease`` has left (to the millisecond for leases this client granted or
        refreshed), or None when it does not exist."""
        req = rpc.LeaseTimeToLiveRequest(ID=lease)

        async def fn(m: Member, left: float) -> Any:
            return await m.lease.LeaseTimeToLive(req, timeout=left, metadata=REQUIRE_LEADER)

        resp = await self._conn.call(fn, Retry.SAFE)
        if resp.TTL < 0:
            self._expiry.pop(lease, None)
            return None
        whole = float(resp.TTL)  # etcd truncates: the true value is in [whole, whole + 1)
        expiry = self._expiry.get(lease)
        if expiry is not None:
            local = expiry - asyncio.get_running_loop().time()
            if whole <= local < whole + 1:
                return round(local, 3)
            self._expiry.pop(lease, None)  # refreshed by someone else: our estimate is stale
        return whole

    async def close(self) -> None:
        """Close open watches and every connection."""
        if self._sync is not None:
            self._sync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync
        for watch in list(self._watches):
            await watch.close()
        self._watches.clear()
        await self._conn.close()


async def _keepalive_once(member: Member, lease: int, timeout: float) -> int:
    """One round trip on etcd's LeaseKeepAlive stream; the new TTL (0: no such lease)."""
    call = member.lease.LeaseKeepAlive(timeout=timeout, metadata=REQUIRE_LEADER)
    try:
        await send_first(call, rpc.LeaseKeepAliveRequest(ID=lease), timeout)
        resp = await call.read()
        return 0 if resp is STREAM_END else int(resp.TTL)
    finally:
        call.cancel()
