"""The etcd cluster's membership through a store connection: list, add (as a learner),
promote, remove; and following membership changes (what etcd's own client calls auto-sync),
so a daemon started when the cluster had one member fails over to the members added since.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aetcd import rpc

from shipmate.errors import StoreError
from shipmate.store.etcd_conn import REQUIRE_LEADER, Connection, Member, Retry

log = logging.getLogger(__name__)
RECONFIG_WAIT = 30.0


@dataclasses.dataclass(frozen=True)
class EtcdMember:
    """One member of the etcd cluster (``name`` is empty until a new member has started)."""

    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    learner: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (the ID in hex, as etcdctl prints it)."""
        return {"id": format(self.id, "x"), "name": self.name, "peer_urls": list(self.peer_urls),
                "client_urls": list(self.client_urls), "learner": self.learner}


def _member(m: Any) -> EtcdMember:
    return EtcdMember(int(m.ID), str(m.name), tuple(m.peerURLs), tuple(m.clientURLs),
                      bool(m.isLearner))


async def members(conn: Connection) -> list[EtcdMember]:
    """Every member, learners included (a linearizable read)."""
    async def fn(m: Member, left: float) -> Any:
        return await rpc.ClusterStub(m.channel).MemberList(
            rpc.MemberListRequest(linearizable=True), timeout=left, metadata=REQUIRE_LEADER)

    return [_member(m) for m in (await conn.call(fn, Retry.SAFE)).members]


async def _reconfigure(conn: Connection, fn: Callable[[Member, float], Awaitable[Any]]) -> Any:
    """A membership change. etcd refuses one while a member joined, was promoted or came
    back in the last 5 s ("unhealthy cluster": its strict reconfiguration check), so that
    is waited out, up to :data:`RECONFIG_WAIT` seconds."""
    deadline = asyncio.get_running_loop().time() + RECONFIG_WAIT
    while True:
        try:
            return await conn.call(fn, Retry.ONCE)
        except StoreError as exc:
            if "unhealthy cluster" not in exc.message or \
                    asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(0.5)


async def add_learner(conn: Connection, peer_url: str) -> tuple[EtcdMember, list[EtcdMember]]:
    """Add a non-voting member at ``peer_url``: it does not count for the quorum until
    promoted, so a joiner that never starts cannot stall the cluster. Returns it and the
    members after the change."""
    async def fn(m: Member, left: float) -> Any:
        return await rpc.ClusterStub(m.channel).MemberAdd(
            rpc.MemberAddRequest(peerURLs=[peer_url], isLearner=True), timeout=left,
            metadata=REQUIRE_LEADER)

    resp = await _reconfigure(conn, fn)
    return _member(resp.member), [_member(m) for m in resp.members]


async def promote(conn: Connection, member_id: int) -> None:
    """Make a learner a voting member (etcd refuses while it has not caught up)."""
    async def fn(m: Member, left: float) -> Any:
        return await rpc.ClusterStub(m.channel).MemberPromote(
            rpc.MemberPromoteRequest(ID=member_id), timeout=left, metadata=REQUIRE_LEADER)

    await conn.call(fn, Retry.ONCE)


async def remove(conn: Connection, member_id: int) -> None:
    """Remove a member from the cluster."""
    async def fn(m: Member, left: float) -> Any:
        return await rpc.ClusterStub(m.channel).MemberRemove(
            rpc.MemberRemoveRequest(ID=member_id), timeout=left, metadata=REQUIRE_LEADER)

    await _reconfigure(conn, fn)


def client_urls(found: list[EtcdMember], preferred: list[str]) -> list[str]:
    """The voting members' client URLs: those of ``preferred`` still members, in their order
    (a machine's own member first), then the others sorted."""
    urls = {u for m in found if not m.learner for u in m.client_urls}
    first = [u for u in preferred if u in urls]
    return first + sorted(urls - set(first))


async def follow(conn: Connection, preferred: list[str], interval: float) -> None:
    """Every ``interval`` seconds, point ``conn`` at the current voting members (until
    cancelled). A failed read is tried again at the next turn."""
    while True:
        await asyncio.sleep(interval)
        with contextlib.suppress(StoreError):
            urls = client_urls(await members(conn), preferred)
            if urls and conn.set_endpoints(urls):
                log.info("etcd members now: %s", ", ".join(urls))
