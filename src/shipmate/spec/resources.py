"""Resource amounts as users write them (pure): memory sizes and CPU shares.

- Memory: ``256m``, ``1g``, ``512MB``, ``1.5G``, ``65536k``, ``1048576b``; units are powers of
  1024 as in Docker and systemd. A bare number means megabytes on the command line (Dokku's
  ``resource:limit --memory 256``) and bytes in a unit file (systemd's ``MemoryMax=``).
- CPUs: a number of CPUs (``0.5``, Docker's ``--cpus``) or a systemd ``CPUQuota=`` percentage
  (``50%`` is half a CPU).
"""

from __future__ import annotations

import re

from shipmate.errors import ValidationError

_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmgt]?)b?$", re.IGNORECASE)
MIN_MEMORY = 6 * 2**20  # Docker refuses a memory limit under 6 MiB
MAX_CPUS = 1024.0


def parse_memory(text: str, *, bare: str = "b", what: str = "memory") -> int:
    """A memory size in bytes; ``bare`` is the unit of a number without one."""
    match = _SIZE.match(text.strip())
    if not match:
        raise ValidationError(f"{what} {text!r} is not a size",
                              hint="use a number with a unit: 256m, 1g, 512k")
    number, unit = match.groups()
    value = int(float(number) * _UNITS[(unit or bare).lower()])
    if value < MIN_MEMORY:
        raise ValidationError(f"{what} {text!r} is less than 6m, the least Docker accepts")
    return value


def format_memory(value: int) -> str:
    """Bytes as the shortest exact ``256m`` / ``1g`` / ``1536k`` form."""
    for unit in ("t", "g", "m", "k"):
        if value % _UNITS[unit] == 0:
            return f"{value // _UNITS[unit]}{unit}"
    return f"{value}b"


def parse_cpus(text: str, *, what: str = "cpu") -> float:
    """CPUs: ``0.5`` or a ``CPUQuota=``-style ``50%``."""
    clean = text.strip()
    try:
        value = float(clean[:-1]) / 100 if clean.endswith("%") else float(clean)
    except ValueError:
        raise ValidationError(f"{what} {text!r} is not a number of CPUs",
                              hint="use e.g. 0.5 (half a CPU) or 50%") from None
    if not 0.01 <= value <= MAX_CPUS:
        raise ValidationError(f"{what} {text!r} is out of range",
                              hint=f"from 0.01 to {MAX_CPUS:g} CPUs")
    return round(value, 3)


def format_cpus(value: float) -> str:
    """CPUs as ``CPUQuota=`` writes them: ``50%``."""
    return f"{round(value * 100, 1):g}%"
