"""Scheduled backups: names, retention, and the loop on a fake clock (leader only)."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from shipmate.backup.schedule import ScheduledBackups, archive_name, backup_dir, expired
from shipmate.config import load
from shipmate.errors import ConfigError, ShipmateError
from shipmate.testing import FakeClock


def test_names_and_retention() -> None:
    when = dt.datetime(2024, 3, 1, 3, 0, tzinfo=dt.UTC)
    assert archive_name(when) == "shipmate-backup-20240301T030000Z.tar.gz"
    names = [archive_name(when + dt.timedelta(days=d)) for d in (2, 0, 1, 3)]
    names += ["mine.tar.gz", "shipmate-backup-x.tar.gz"]
    assert expired(names, 2) == [archive_name(when), archive_name(when + dt.timedelta(days=1))]
    assert expired(names, 10) == []
    assert expired(names, 0) == expired(names, 1)  # at least the newest one stays


def test_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="backup_schedule"):
        load({"SHIPMATE_STATE_DIR": str(tmp_path), "SHIPMATE_BACKUP_SCHEDULE": "61 * * * *"})
    with pytest.raises(ConfigError, match="backup_keep"):
        load({"SHIPMATE_STATE_DIR": str(tmp_path), "SHIPMATE_BACKUP_KEEP": "0"})
    cfg = load({"SHIPMATE_STATE_DIR": str(tmp_path)})
    assert backup_dir(cfg) == tmp_path / "backups"


class _Maker:
    """Stands in for BackupMaker: writes a small file, or fails when told."""

    def __init__(self) -> None:
        self.fail = False

    async def create(self, dest: Path, emit: object) -> None:
        if self.fail:
            raise ShipmateError("disk full")
        dest.write_text("archive")


async def test_the_loop_backs_up_when_due_on_the_leader_and_prunes(tmp_path: Path) -> None:
    cfg = load({"SHIPMATE_STATE_DIR": str(tmp_path), "SHIPMATE_BACKUP_SCHEDULE": "@hourly",
                "SHIPMATE_BACKUP_KEEP": "2"})
    clock = FakeClock()
    start = dt.datetime(2024, 3, 1, 0, 30, tzinfo=dt.UTC)
    leader = [False]
    maker = _Maker()
    jobs = ScheduledBackups(maker, cfg, lambda: leader[0], clock=clock,  # type: ignore[arg-type]
                            wall=lambda: start + dt.timedelta(seconds=clock.now() - 1000.0))
    task = asyncio.create_task(jobs.run())
    folder = tmp_path / "backups"

    async def hours(n: float) -> None:
        for _ in range(int(n * 60)):
            while not clock.sleepers:
                await asyncio.sleep(0)
            await clock.advance(60)

    await hours(1)  # 01:00 came while another machine led: nothing here
    assert not folder.exists()
    leader[0] = True
    await hours(3)  # 02:00, 03:00, 04:00
    assert sorted(p.name for p in folder.iterdir()) == [
        "shipmate-backup-20240301T030000Z.tar.gz", "shipmate-backup-20240301T040000Z.tar.gz"]
    maker.fail = True
    await hours(1)
    assert jobs.failures == 1 and len(list(folder.iterdir())) == 2
    task.cancel()
