"""Service backups: names, retention, what is due (pure), and the daemon's schedule driven by
a FakeClock (the dump itself is a stand-in that writes a file; the real one is in
tests/integration/test_services_backup.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from pathlib import Path

import pytest

from shipmate.errors import ShipmateError, ValidationError
from shipmate.scheduler.model import UnitState
from shipmate.scheduler.registry import Registry
from shipmate.services.backup_scheduler import BackupScheduler
from shipmate.services.backups import (
    BackupSchedule,
    LastBackup,
    beyond_retention,
    due_slot,
    file_name,
    make_schedule,
    validate_directory,
)
from shipmate.services.model import Service, check_port, unit_text
from shipmate.services.state import ServiceState
from shipmate.spec.unitcontainer import container_spec
from shipmate.spec.units import parse_unit
from shipmate.testing import FakeClock
from shipmate.testing.store import memory_store

PG = Service("postgres", "db", "15", "ab" * 16, 1.0, "m1")
REDIS = Service("redis", "cache", "7", "cd" * 16, 1.0, "m1")
# 2024-05-01 02:58:00 UTC
T0 = dt.datetime(2024, 5, 1, 2, 58, tzinfo=dt.UTC).timestamp()


def test_backups_are_named_after_the_service_and_the_utc_time() -> None:
    assert file_name(PG, T0 + 2) == "postgres-db-20240501T025802Z.dump"
    assert file_name(REDIS, T0) == "redis-cache-20240501T025800Z.rdb"


def test_retention_deletes_the_oldest_of_the_services_backups_only() -> None:
    names = [file_name(PG, T0 + 60 * i) for i in range(5)] + [
        "notes.txt", "postgres-db2-20240101T000000Z.dump", "postgres-db-latest.dump",
        file_name(REDIS, T0)]
    assert beyond_retention(PG, reversed(names), 3) == [file_name(PG, T0),
                                                        file_name(PG, T0 + 60)]
    assert beyond_retention(PG, names, 10) == []


def test_a_run_is_due_once_per_slot_and_never_before_the_schedule() -> None:
    sched = BackupSchedule("0 3 * * *", "/srv/b", 7, set_at=T0)
    assert due_slot(sched, None, T0 + 60) is None  # 02:59: the last slot predates it
    slot = due_slot(sched, None, T0 + 125)  # 03:00:05
    assert slot == T0 + 120
    assert due_slot(sched, LastBackup(slot, slot + 3, "f"), T0 + 3600) is None
    # a day missed entirely: made up once, for the latest slot only
    later = T0 + 3 * 86400 + 7200
    assert due_slot(sched, LastBackup(slot, slot + 3, "f"), later) == slot + 3 * 86400


def test_schedules_and_directories_are_checked() -> None:
    assert make_schedule("@daily", "/srv/backups/", 3, 0.0).directory == "/srv/backups"
    for cron in ("", "61 * * * *", "@reboot", "* * *"):
        with pytest.raises(ValidationError):
            make_schedule(cron, "/srv/b", 3, 0.0)
    with pytest.raises(ValidationError, match="--keep 0 is out of range"):
        make_schedule("@daily", "/srv/b", 0, 0.0)
    for bad in ("relative", "/srv/../etc", "/", "/etc", "/etc/b", "/usr/x", "/srv//b",
                "/srv/b;rm", "/proc/1"):
        with pytest.raises(ValidationError):
            validate_directory(bad)


def test_an_exposed_service_publishes_its_port_and_ports_are_checked() -> None:
    exposed = Service("postgres", "db", "15", "pw", 1.0, exposed=15432)
    unit = parse_unit(exposed.unit, unit_text(exposed))
    spec = container_spec(unit.file, exposed.unit, hostname="h", machine_id="m")
    assert [(p.host_port, p.container_port) for p in spec.ports] == [(15432, 5432)]
    assert "PublishPort" not in unit_text(PG)
    assert check_port(15432, {0, 6000}) == 15432
    for port in (0, 80, 70000):
        with pytest.raises(ValidationError, match="Invalid port"):
            check_port(port, set())
    with pytest.raises(ValidationError, match="taken by another service"):
        check_port(6000, {6000})


class Dumps:
    """A stand-in for the dump job: writes a small file, or fails when told to."""

    def __init__(self) -> None:
        self.made: list[tuple[str, float]] = []
        self.fail = False

    async def __call__(self, service: Service, directory: str, now: float) -> str:
        if self.fail:
            raise ShipmateError("pg_dump: connection refused")
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, file_name(service, now))
        Path(path).write_text("PGDMP")
        self.made.append((service.name, now))
        return path


async def _settle(clock: FakeClock) -> None:
    """Wait until the scheduler sleeps again (its store reads run in a thread)."""
    for _ in range(2000):
        if clock.sleepers:
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the scheduler never went back to sleep")


async def test_the_daemon_running_the_service_backs_it_up_on_schedule(tmp_path: Path) -> None:
    store = await memory_store()
    state, registry = ServiceState(store), Registry(store)
    other = Service("postgres", "elsewhere", "15", "pw", 1.0, "m2")
    for service, machine in ((PG, "m1"), (other, "m2")):
        await state.create(service)
        await registry.report_state(UnitState(service.unit, machine, "loaded", "active",
                                              "running"), 0)
    directory = str(tmp_path / "b")
    for service in (PG, other):
        await state.set_backup_schedule(service, make_schedule("*/5 * * * *", directory, 2,
                                                               T0))
    os.makedirs(directory)
    Path(directory, "keep-me.txt").write_text("mine")
    clock, dumps = FakeClock(start=0.0), Dumps()
    scheduler = BackupScheduler(store, "m1", dumps, clock=clock, wall=lambda: T0 + clock.now(),
                                interval=20)
    task = asyncio.create_task(scheduler.run())
    try:
        for _ in range(3 * 15):  # 15 minutes in steps of 20 s: slots 03:00, 03:05, 03:10
            await _settle(clock)
            await clock.advance(20)
        await _settle(clock)
        assert [when for _, when in dumps.made] == [T0 + 120, T0 + 420, T0 + 720]
        assert {name for name, _ in dumps.made} == {"db"}  # m2's service is m2's business
        assert sorted(os.listdir(directory)) == [
            "keep-me.txt", file_name(PG, T0 + 420), file_name(PG, T0 + 720)]
        last = await state.last_backup(PG)
        assert last is not None and last.slot == T0 + 720 and not last.error
        assert await state.last_backup(other) is None
        dumps.fail = True  # a failed run is recorded, and not retried for its slot
        for _ in range(15):
            await _settle(clock)
            await clock.advance(20)
        await _settle(clock)
        last = await state.last_backup(PG)
        assert last is not None and last.slot == T0 + 1020
        assert last.error == "pg_dump: connection refused"
        assert len(os.listdir(directory)) == 3
    finally:
        task.cancel()
        await store.close()


async def test_no_backup_once_the_schedule_is_removed(tmp_path: Path) -> None:
    store = await memory_store()
    state, registry = ServiceState(store), Registry(store)
    await state.create(REDIS)
    await registry.report_state(UnitState(REDIS.unit, "m1", "loaded", "active", "running"), 0)
    await state.set_backup_schedule(REDIS, make_schedule("* * * * *", str(tmp_path), 1, T0))
    clock, dumps = FakeClock(start=0.0), Dumps()
    scheduler = BackupScheduler(store, "m1", dumps, clock=clock, wall=lambda: T0 + clock.now())
    await clock.advance(65)
    assert len(await scheduler.tick()) == 1
    assert await scheduler.tick() == []  # once per slot
    await state.set_backup_schedule(REDIS, None)
    await clock.advance(120)
    assert await scheduler.tick() == [] and len(dumps.made) == 1
    await state.destroy(REDIS)
    with pytest.raises(ShipmateError):  # a destroyed service takes no schedule
        await state.set_backup_schedule(REDIS, make_schedule("@daily", str(tmp_path), 1, T0))
    await store.close()


def test_backups_name_a_server_directory_so_they_are_local_only() -> None:
    from shipmate.paas.sshpolicy import COMMANDS

    for kind in ("postgres", "redis"):
        assert not COMMANDS[f"{kind}:backup"].allowed
        assert not COMMANDS[f"{kind}:backup-schedule"].allowed
        assert COMMANDS[f"{kind}:backup-unschedule"].allowed
        assert COMMANDS[f"{kind}:expose"].allowed
        assert COMMANDS[f"{kind}:import"].stdin == "dump"
