"""What this machine offers units to reserve: its CPUs and memory (reported with its record).

By default the CPUs this process may run on (``sched_getaffinity``; a cgroup CPU quota lowers
it) and ``MemTotal`` from ``/proc/meminfo`` (a cgroup memory limit lowers it). The
``machine_cpus`` and ``machine_memory`` settings replace them: to keep room back for the
system, or to simulate machines of another size.
"""

from __future__ import annotations

import os
from pathlib import Path

from shipmate.config import Config
from shipmate.spec.resources import parse_memory

CGROUP = Path("/sys/fs/cgroup")


def machine_capacity(config: Config, *, proc: Path = Path("/proc"),
                     cgroup: Path = CGROUP) -> tuple[float, int]:
    """``(cpus, memory bytes)`` this machine offers; 0 for what cannot be found out."""
    cpus = config.machine_cpus if config.machine_cpus > 0 else _cpus(cgroup)
    if config.machine_memory:
        memory = parse_memory(config.machine_memory, bare="m", what="machine_memory")
    else:
        memory = _memory(proc / "meminfo", cgroup / "memory.max")
    return round(cpus, 3), memory


def _cpus(cgroup: Path) -> float:
    try:
        count = float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        count = float(os.cpu_count() or 0)
    quota = _read(cgroup / "cpu.max").split()
    if len(quota) == 2 and quota[0].isdigit() and quota[1].isdigit() and int(quota[1]):
        count = min(count, int(quota[0]) / int(quota[1]))
    return count


def _memory(meminfo: Path, limit: Path) -> int:
    total = 0
    for line in _read(meminfo).splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                total = int(parts[1]) * 1024  # kB
    cap = _read(limit).strip()
    if cap.isdigit() and (not total or int(cap) < total):
        total = int(cap)
    return total


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
