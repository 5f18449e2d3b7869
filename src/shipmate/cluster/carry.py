"""Carrying a single machine's SQLite store into the cluster's etcd at ``cluster init``:
apps, releases, config, domains, units, SSH keys, certificates, events: every key that is
not under a lease. Of the leased keys (a running daemon's heartbeat, unit states and router
endpoints) those are bridged under one short lease: the daemon on etcd writes them again
under its own within seconds, and until then the scheduler still sees the machine (it moves
no unit) and the router still has the endpoints (no request fails). The leader key is left
behind: the new scheduler is elected at once. The supervisor does this once, after etcd is
up and before the daemon starts on it, so the daemon finds its apps and units as it left
them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from shipmate.errors import ConflictError
from shipmate.router.keys import ENDPOINTS_PREFIX
from shipmate.scheduler.registry import MACHINES, STATES
from shipmate.store.base import Op, Store

log = logging.getLogger(__name__)
BATCH = 100  # etcd takes at most 128 operations in one transaction by default
BRIDGE_TTL = 30.0
BRIDGED = (ENDPOINTS_PREFIX, MACHINES, STATES)
CARRIED_SUFFIX = ".carried"


async def carry(source: Store, target: Store) -> int:
    """Copy every key of ``source`` without a lease, and the bridged leased ones, into
    ``target`` (which must hold no Shipmate keys yet); returns how many."""
    existing, _ = await target.range("/shipmate/")
    if existing:
        raise ConflictError("the cluster's store holds Shipmate keys already; nothing carried",
                            hint="carry a single machine's store into a new cluster only")
    kvs, _ = await source.range("/")
    keep = [kv for kv in kvs if not kv.lease]
    bridged = [kv for kv in kvs if kv.lease and kv.key.startswith(BRIDGED)]
    lease = await target.grant(BRIDGE_TTL) if bridged else 0
    ops = [Op.put(kv.key, kv.value) for kv in keep]
    ops += [Op.put(kv.key, kv.value, lease) for kv in bridged]
    for start in range(0, len(ops), BATCH):
        await target.txn([], ops[start:start + BATCH])
    return len(ops)


async def carry_file(path: Path, target: Store) -> int:
    """:func:`carry` from the SQLite file at ``path``, which is then renamed ``*.carried``
    (kept: nothing is lost, and it is not carried twice)."""
    from shipmate.store.sqlite import SqliteStore

    source = await SqliteStore.open(path)
    try:
        n = await carry(source, target)
    finally:
        with contextlib.suppress(Exception):
            await source.close()
    await asyncio.to_thread(path.rename, path.with_name(path.name + CARRIED_SUFFIX))
    log.info("carried %d keys from %s into etcd", n, path)
    return n
