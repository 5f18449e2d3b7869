"""What a machine reports it offers: CPUs and memory, found out or set."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipmate import config
from shipmate.agent.capacity import machine_capacity
from shipmate.errors import ValidationError


def test_memory_from_meminfo_lowered_by_a_cgroup_limit(tmp_path: Path) -> None:
    proc, cgroup = tmp_path / "proc", tmp_path / "cgroup"
    proc.mkdir()
    cgroup.mkdir()
    (proc / "meminfo").write_text("MemTotal:       16384000 kB\nMemFree: 1 kB\n")
    cpus, memory = machine_capacity(config.load({}), proc=proc, cgroup=cgroup)
    assert memory == 16384000 * 1024 and cpus > 0
    (cgroup / "memory.max").write_text("1073741824\n")
    (cgroup / "cpu.max").write_text("50000 100000\n")
    assert machine_capacity(config.load({}), proc=proc, cgroup=cgroup) == (0.5, 2**30)
    (cgroup / "memory.max").write_text("max\n")
    assert machine_capacity(config.load({}), proc=proc, cgroup=cgroup)[1] == 16384000 * 1024


def test_settings_replace_what_is_found(tmp_path: Path) -> None:
    env = {"SHIPMATE_MACHINE_CPUS": "3", "SHIPMATE_MACHINE_MEMORY": "12g"}
    assert machine_capacity(config.load(env), proc=tmp_path, cgroup=tmp_path) == (3.0, 12 * 2**30)
    with pytest.raises(ValidationError, match="machine_memory"):
        machine_capacity(config.load({"SHIPMATE_MACHINE_MEMORY": "lots"}))
