"""The store snapshot: what a backup keeps, and what a restore writes back."""

from __future__ import annotations

import json

import pytest

from shipmate.backup.snapshot import Snapshot, kept, outside
from shipmate.errors import ValidationError
from shipmate.paas.storage_rules import StorageMount
from shipmate.store.base import KeyValue


def kv(key: str, value: bytes = b"{}", lease: int = 0) -> KeyValue:
    return KeyValue(key, value, 1, 1, 1, lease)


def test_a_backup_leaves_out_what_describes_the_running_moment() -> None:
    keep = ["/shipmate/apps/web/meta", "/shipmate/apps/web/config", "/shipmate/ssh-keys/me",
            "/shipmate/routes/domains/web", "/shipmate/routes/global-domain",
            "/shipmate/tls/certs/web", "/shipmate/fleet/units/x.service",
            "/shipmate/fleet/desired/x.service", "/shipmate/events/000000000001"]
    drop = ["/shipmate/endpoints/web/web/1", "/shipmate/routers/m1", "/shipmate/fleet/leader",
            "/shipmate/fleet/machines/m1", "/shipmate/fleet/states/x.service/m1",
            "/shipmate/fleet/placements/x.service", "/shipmate/routes/active/web",
            "/shipmate/tls/challenges/abc", "/shipmate/journal/x"]
    snap = Snapshot.of([kv(k) for k in keep + drop] + [kv("/shipmate/apps/web/deploy-lock",
                                                          lease=7)], 9)
    assert sorted(snap.keys) == sorted(keep)
    assert not kept(kv("/shipmate/apps/web/meta", lease=3))


def test_round_trip_keeps_bytes_exactly() -> None:
    snap = Snapshot(5, {"/shipmate/a": b"\x00\xff binary", "/shipmate/b": b"{}"})
    assert Snapshot.from_json(snap.to_json()) == snap


def test_a_snapshot_with_keys_outside_the_root_is_refused() -> None:
    with pytest.raises(ValidationError, match="outside /shipmate/"):
        Snapshot.from_json(Snapshot(1, {"/etc/x": b""}).to_json())
    with pytest.raises(ValidationError, match="not a store snapshot"):
        Snapshot.from_json(b'{"keys": [{"key": "/shipmate/a", "value": "***"}]}')


def test_apps_services_and_what_a_restore_writes() -> None:
    keys = {"/shipmate/apps/web/meta": b"{}", "/shipmate/apps/web/current": b'{"version": 3}',
            "/shipmate/apps/idle/meta": b"{}",
            "/shipmate/apps/web/releases/000003": b"{}",
            "/shipmate/services/postgres/db/meta": b'{"kind": "postgres"}',
            "/shipmate/services/postgres/db/links/web": b"{}",
            "/shipmate/fleet/units/web_web.1_v3-ab12.container": b"{}",
            "/shipmate/fleet/desired/web_web.1_v3-ab12.container": b"{}",
            "/shipmate/fleet/units/postgres-db.container": b"{}",
            "/shipmate/fleet/units/hello.service": b"{}",
            "/shipmate/events/000000000001": b"{}", "/shipmate/events-seq": b"1"}
    snap = Snapshot(8, keys)
    assert snap.apps() == {"idle": None, "web": 3}
    assert snap.services() == [("postgres", "db", b'{"kind": "postgres"}')]
    assert snap.unit_names() == ["hello.service", "postgres-db.container",
                                 "web_web.1_v3-ab12.container"]
    written = snap.restored_keys({"web_web.1_v3-ab12.container", "postgres-db.container"})
    assert sorted(set(keys) - set(written)) == [
        "/shipmate/events-seq", "/shipmate/events/000000000001",
        "/shipmate/fleet/desired/web_web.1_v3-ab12.container",
        "/shipmate/fleet/units/postgres-db.container",
        "/shipmate/fleet/units/web_web.1_v3-ab12.container"]


def _mounts(*mounts: tuple[str, str, str]) -> bytes:
    return json.dumps([{"host": h, "container": c, "machine": m} for h, c, m in mounts]).encode()


STORAGE_SNAP = Snapshot(3, {
    "/shipmate/apps/web/meta": b"{}",
    "/shipmate/apps/web/storage": _mounts(("/old/state/storage/web", "/app/storage", "old"),
                                          ("/srv/media", "/app/media", "old")),
    "/shipmate/apps/far/meta": b"{}",
    "/shipmate/apps/far/storage": _mounts(("/old/state/storage/far", "/data", "m2")),
    "/shipmate/apps/none/meta": b"{}", "/shipmate/apps/none/storage": b"[]"})


def test_mounts_of_the_old_machine_follow_the_storage_to_this_one() -> None:
    moved = STORAGE_SNAP.storage_moved(("/old/state/storage", "old"),
                                       ("/new/state/storage", "new"))
    assert moved.mounts() == {
        "far": [StorageMount("/old/state/storage/far", "/data", "m2")],  # its own machine's
        "web": [StorageMount("/new/state/storage/web", "/app/storage", "new"),
                StorageMount("/srv/media", "/app/media", "new")]}
    assert moved.keys["/shipmate/apps/far/storage"] == STORAGE_SNAP.keys[
        "/shipmate/apps/far/storage"]  # untouched, byte for byte
    same = STORAGE_SNAP.storage_moved(("/old/state/storage", "old"),
                                      ("/old/state/storage", "old"))
    assert same.keys == STORAGE_SNAP.keys


def test_a_backup_names_the_mounts_it_cannot_hold() -> None:
    assert outside(STORAGE_SNAP.mounts(), "/old/state/storage", "old") == [
        "far: storage /old/state/storage/far is on machine m2 (back it up there)",
        "web: storage /srv/media is outside /old/state/storage (back it up yourself)"]
