"""Carrying a single machine's store into a new cluster's: every key but the leased ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipmate.cluster.carry import CARRIED_SUFFIX, carry, carry_file
from shipmate.errors import ConflictError
from shipmate.store.sqlite import SqliteStore
from shipmate.testing import memory_store


async def test_everything_is_carried_and_heartbeats_under_a_short_lease(
        tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    source = await SqliteStore.open(path)
    for i in range(250):  # more than one transaction's worth
        await source.put(f"/shipmate/paas/apps/app{i}", f'{{"name": "app{i}"}}')
    await source.put("/shipmate/ssh-keys/alice", "ssh-ed25519 AAAA alice")
    lease = await source.grant(30)
    await source.put("/shipmate/fleet/machines/web-1", "{}", lease=lease)
    await source.put("/shipmate/fleet/leader", "{}", lease=lease)
    await source.close()
    target = await memory_store()
    try:
        assert await carry_file(path, target) == 252
        kv = await target.get("/shipmate/ssh-keys/alice")
        assert kv is not None and kv.value == b"ssh-ed25519 AAAA alice" and not kv.lease
        # the machine stays up for the scheduler until its daemon registers on etcd...
        machine = await target.get("/shipmate/fleet/machines/web-1")
        assert machine is not None and machine.lease
        assert await target.time_to_live(machine.lease) == pytest.approx(30, abs=1)
        # ...but a new scheduler leader is elected at once
        assert await target.get("/shipmate/fleet/leader") is None
        assert not path.exists() and path.with_name("store.db" + CARRIED_SUFFIX).exists()
    finally:
        await target.close()


async def test_a_used_store_is_not_overwritten() -> None:
    source, target = await memory_store(), await memory_store()
    try:
        await source.put("/shipmate/paas/apps/a", "{}")
        await target.put("/shipmate/paas/apps/b", "{}")
        with pytest.raises(ConflictError, match="holds Shipmate keys already"):
            await carry(source, target)
        assert await target.get("/shipmate/paas/apps/a") is None
    finally:
        await source.close()
        await target.close()
