"""Carrying a single machine's SQLite store into the cluster's etcd at ``cluster init``:
apps, releases, config, domains, units, SSH keys, certificates, events: every key that is
not under a lease (leased keys are a running daemon's heartbeats and endpoints, which the
daemon writes again on etcd). The supervisor does it once, after etcd is up and before
the daemon starts on it, so the daemon finds its apps and units where it left them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from shipmate.errors import ConflictError
from shipmate.store.base import Op, Store

log = logging.getLogger(__name__)
BATCH = 100  # etcd takes at most 128 operations in one transaction by default
CARRIED_SUFFIX = ".carried"


async def carry(source: Store, target: Store) -> int:
    """Copy every key of ``source`` without a lease into ``target`` (which must hold no
    Shipmate keys yet); returns how many. Values and keys are copied as they are."""
    existing, _ = await target.range("/shipmate/")
    if existing:
        raise ConflictError("the cluster's store holds Shipmate keys already; nothing carried",
                            hint="carry a single machine's store into a new cluster only")
    kvs, _ = await source.range("/")
    keep = [kv for kv in kvs if not kv.lease]
    for start in range(0, len(keep), BATCH):
        ops = [Op.put(kv.key, kv.value) for kv in keep[start:start + BATCH]]
        await target.txn([], ops)
    return len(keep)


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
