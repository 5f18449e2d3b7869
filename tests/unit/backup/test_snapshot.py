"""The store snapshot: what a backup keeps, and what a restore writes back."""

from __future__ import annotations

import pytest

from shipmate.backup.snapshot import Snapshot, kept
from shipmate.errors import ValidationError
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
