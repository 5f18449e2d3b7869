"""storage:* rules and records: which host paths may be mounted, and what a mount does to
the app's units (volumes, placement) from the next deploy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shipmate import config
from shipmate.errors import ValidationError
from shipmate.paas.attach import Attachments, AttachmentStore, Link, placement_note, unit_extras
from shipmate.paas.state import PaasState
from shipmate.paas.storage import Storage, chown_ids
from shipmate.paas.storage_rules import (
    StorageMount,
    add_mount,
    check_container_path,
    check_host_path,
    parse_mount,
    remove_mount,
)
from shipmate.paas.units import instance_units
from shipmate.spec.container import ContainerSpec
from shipmate.spec.unitcontainer import container_spec
from shipmate.spec.units import Unit, parse_unit
from shipmate.testing.store import memory_store

STATE = "/var/lib/shipmate"


@pytest.mark.parametrize("path", [
    "/", "/etc", "/etc/nginx", "/var/lib/shipmate", "/var/lib/shipmate/store.db",
    "/var/lib", "/var", "/var/run/docker.sock", "/run", "/run/docker.sock", "/proc/1",
    "/usr/bin", "/data/../etc", "/data/./x", "relative/path", "/data//x", "/da ta",
    "/data%n", '/data"x', "/var/lib/shipmate/storage",
])
def test_dangerous_or_malformed_host_paths_are_refused(path: str) -> None:
    with pytest.raises(ValidationError) as err:
        check_host_path(path, STATE, remote=False)
    assert err.value.message.startswith(("Refusing to mount", "Invalid storage"))


def test_ordinary_paths_and_storage_directories_are_accepted() -> None:
    assert check_host_path("/srv/data/", STATE, remote=False) == "/srv/data"
    assert check_host_path("/var/lib/shipmate/storage/app", STATE, remote=False) \
        == "/var/lib/shipmate/storage/app"
    assert check_host_path("app", STATE, remote=False) == "/var/lib/shipmate/storage/app"


def test_over_ssh_only_storage_directories_are_accepted() -> None:
    assert check_host_path("/var/lib/shipmate/storage/app", STATE, remote=True) \
        == "/var/lib/shipmate/storage/app"
    for path in ("/srv/data", "/var/lib/shipmate/storage/app/sub", "/tmp"):
        with pytest.raises(ValidationError, match="over SSH"):
            check_host_path(path, STATE, remote=True)


def test_container_paths() -> None:
    assert check_container_path("/app/storage/") == "/app/storage"
    for bad in ("/", "/proc", "/sys/x", "/dev", "app/storage", "/a/../b"):
        with pytest.raises(ValidationError):
            check_container_path(bad)


def test_mount_lists_refuse_duplicates_other_machines_and_unknown_unmounts() -> None:
    one = parse_mount("app:/data", STATE, remote=False, machine="m1")
    assert one == StorageMount("/var/lib/shipmate/storage/app", "/data", "m1")
    mounts = add_mount([], one)
    with pytest.raises(ValidationError, match="already in use"):
        add_mount(mounts, StorageMount("/srv/x", "/data", "m1"))
    with pytest.raises(ValidationError, match="on machine m1"):
        add_mount(mounts, StorageMount("/srv/x", "/other", "m2"))
    with pytest.raises(ValidationError, match="does not exist"):
        remove_mount(mounts, StorageMount("/srv/x", "/data"))
    assert remove_mount(mounts, StorageMount(one.host, one.container)) == []
    with pytest.raises(ValidationError, match="HOST_PATH:CONTAINER_PATH"):
        parse_mount("/srv/x", STATE, remote=False, machine="m1")


def test_chown_choices() -> None:
    assert chown_ids("herokuish") == (32767, 32767)
    assert chown_ids("1000:50") == (1000, 50)
    assert chown_ids("false") is None
    with pytest.raises(ValidationError):
        chown_ids("nobody")


def _spec(att: Attachments) -> tuple[ContainerSpec, Unit]:
    (unit,) = instance_units("app", "v1-0000", "img", {"web": "x"}, {"web": 1}, {}, "r",
                             extras=unit_extras(att))
    parsed = parse_unit(unit.name, unit.text)
    return container_spec(parsed.file, unit.name, hostname="h", machine_id="m"), parsed


def test_mounts_become_volumes_and_pin_the_units_to_the_storage_machine() -> None:
    att = Attachments((StorageMount("/srv/a", "/data", "m1"),),
                      {"postgres:db": Link("shipmate-svc-postgres-db", "postgres-db.container")})
    spec, parsed = _spec(att)
    assert [(m.source, m.target) for m in spec.mounts] == [("/srv/a", "/data")]
    assert spec.network == "shipmate-svc-postgres-db"
    assert parsed.requirements.machine_id == "m1"
    assert "local storage on machine m1" in placement_note("app", att)


def test_links_alone_make_the_units_follow_the_services() -> None:
    att = Attachments((), {"postgres:db": Link("shipmate-svc-postgres-db", "postgres-db.container"),
                           "redis:c": Link("shipmate-svc-redis-c", "redis-c.container")})
    spec, parsed = _spec(att)
    assert spec.network == "shipmate-svc-postgres-db"
    assert spec.networks == ("shipmate-svc-redis-c",)
    assert set(parsed.requirements.machine_of) == {
        "postgres-db.container", "redis-c.container"}
    assert placement_note("app", Attachments()) == ""


async def test_mount_needs_an_existing_directory_and_keeps_records(tmp_path: Path) -> None:
    store = await memory_store()
    cfg = config.load({}, state_dir=tmp_path / "state", machine_id="m1")
    await PaasState(store).create_app("app")
    storage = Storage(store, cfg)
    with pytest.raises(ValidationError, match="no such directory"):
        await storage.mount("app", "app:/data", remote=True)
    assert await storage.list("app") == []  # nothing recorded
    lines: list[str] = []
    path = await storage.ensure_directory("app", "false", lines.append)
    assert os.path.isdir(path) and lines == [f"-----> Ensuring {path} exists"]
    await storage.mount("app", f"{path}:/data", remote=True)
    assert (await AttachmentStore(store).read("app")).mounts == (
        StorageMount(path, "/data", "m1"),)
    report = await storage.report("app")
    assert report["deploy_mounts"] == f"-v {path}:/data" and report["machine"] == "m1"
    await storage.unmount("app", "app:/data", remote=False)
    assert await storage.list("app") == []


async def test_a_symlink_out_of_the_storage_root_is_refused(tmp_path: Path) -> None:
    store = await memory_store()
    cfg = config.load({}, state_dir=tmp_path / "state", machine_id="m1")
    await PaasState(store).create_app("app")
    storage = Storage(store, cfg)
    root = Path(storage.root)
    root.mkdir(parents=True)
    (root / "evil").symlink_to("/etc")
    for remote in (True, False):
        with pytest.raises(ValidationError, match="/etc"):
            await storage.mount("app", "evil:/data", remote=remote)
    assert await storage.list("app") == []
