"""Which store revision each machine's router has made live, so that a deploy retires old
instances only once every live router has taken the switch.

Every router controller writes ``/shipmate/routers/<machine>`` = ``{"revision": N}`` under its
machine's lease (the agent's heartbeat lease, read from the machine record): once at start
(revision 0, so a router that never gets a config live is still known and waited for) and
after each pass that read a revision newer than its own last write. A machine that dies takes
its record with it. *Live routers* are the machines with a live heartbeat that have such a
record; a deploy waits, bounded, until each has made the switch's revision live
(:func:`wait_routers`), then retires the old instances.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Protocol

from shipmate.clock import Clock
from shipmate.errors import LeaseNotFoundError
from shipmate.scheduler.registry import MACHINES, machine_key
from shipmate.store.base import Store

ROUTERS_PREFIX = "/shipmate/routers/"


class LocalRouter(Protocol):
    """This machine's router as the deploy sees it (the controller's in-memory revision)."""

    revision: int


def router_key(machine: str) -> str:
    """Where ``machine``'s router records the revision it has made live."""
    return ROUTERS_PREFIX + machine


def behind(records: Mapping[str, int], live: Collection[str], revision: int) -> list[str]:
    """The live machines whose router has not made ``revision`` live yet (pure, sorted)."""
    return sorted(m for m, applied in records.items() if m in live and applied < revision)


async def routers_behind(store: Store, revision: int) -> list[str]:
    """Read the routers' records and the live machines; the routers still behind."""
    kvs, _ = await store.range(ROUTERS_PREFIX)
    records: dict[str, int] = {}
    for kv in kvs:
        try:
            records[kv.key[len(ROUTERS_PREFIX):]] = int(json.loads(kv.value)["revision"])
        except (ValueError, KeyError, TypeError):
            continue  # a record we cannot read cannot be waited for
    machines, _ = await store.range(MACHINES)
    return behind(records, {kv.key[len(MACHINES):] for kv in machines}, revision)


async def wait_routers(store: Store, revision: int, *, timeout: float, clock: Clock,
                       local: LocalRouter | None = None, poll: float = 0.1) -> list[str]:
    """Wait until every live router (and ``local``, this machine's, when given) has made
    ``revision`` live, or ``timeout`` passed; returns the routers still behind (empty: all
    caught up; ``"this machine"`` stands for ``local``)."""
    deadline = clock.now() + timeout
    while True:
        late = await routers_behind(store, revision)
        if local is not None and local.revision < revision:
            late.append("this machine")
        if not late or clock.now() >= deadline:
            return late
        await clock.sleep(poll)


class ProgressWriter:
    """The router controller's side: records the revision it made live."""

    def __init__(self, store: Store, machine_id: str) -> None:
        self.store = store
        self.machine_id = machine_id
        self._recorded = -1  # the revision our last write recorded
        self._written = -1  # the store's revision after that write

    async def record(self, revision: int) -> None:
        """Record ``revision`` as live here. Skipped when it says nothing new: not newer
        than the last record, or newer only by our own last write (which changed nothing a
        router reads). Without a machine lease (the agent has not registered yet) it waits
        for the next pass."""
        if revision <= self._recorded or (revision == self._written
                                          and self._recorded == self._written - 1):
            return
        machine = await self.store.get(machine_key(self.machine_id))
        if machine is None or not machine.lease:
            return
        try:
            written = await self.store.put(router_key(self.machine_id),
                                           json.dumps({"revision": revision}),
                                           lease=machine.lease)
        except LeaseNotFoundError:
            return  # the machine's lease just went: its agent registers again
        self._recorded, self._written = revision, written
