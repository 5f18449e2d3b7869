"""Each unit's journal: a bounded log file per unit under the state dir.

A unit's processes write straight into its file (opened ``O_APPEND``), not into a pipe to the
daemon, so they keep running and logging while the daemon restarts. The supervisor adds its
own lines (``Started``, ``Main process exited``) in systemd's words.

Bounded by copy-truncate rotation: when ``NAME.log`` passes ``max_bytes`` its content moves to
``NAME.log.1`` (replacing the previous one) and ``NAME.log`` is truncated in place. Writers
keep their descriptors: with ``O_APPEND`` their next write lands at the new end. A line written
between the copy and the truncate can be lost, the price of never signalling the processes.
A unit therefore keeps at most ``2 * max_bytes`` of log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

from shipmate.errors import NotFoundError

DEFAULT_MAX_BYTES = 1 << 20
FOLLOW_POLL = 0.2


def last_lines(data: bytes, n: int) -> list[str]:
    """The last ``n`` complete-or-trailing lines of ``data``, decoded leniently."""
    if n <= 0:
        return []
    lines = data.decode(errors="replace").splitlines()
    return lines[-n:]


def _read_range(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read(length)


class Journal:
    """Per-unit log files in ``directory``."""

    def __init__(self, directory: Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 hostname: str | None = None) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.hostname = hostname or os.uname().nodename
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, unit: str) -> Path:
        """The current file of ``unit`` (its name is validated by the caller)."""
        return self.directory / f"{unit}.log"

    def open_append(self, unit: str) -> int:
        """A write descriptor for a process's stdout and stderr; the caller closes it."""
        return os.open(self.path(unit), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                       0o640)

    def note(self, unit: str, message: str) -> None:
        """Append a supervisor line, timestamped like journalctl's short format."""
        stamp = time.strftime("%b %d %H:%M:%S")
        line = f"{stamp} {self.hostname} shipmate[{os.getpid()}]: {message}\n"
        fd = self.open_append(unit)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        self.rotate_if_needed(unit)

    def rotate_if_needed(self, unit: str) -> bool:
        """Copy-truncate ``unit``'s file if it is over the bound; True if it rotated."""
        path = self.path(unit)
        try:
            if path.stat().st_size <= self.max_bytes:
                return False
            data = path.read_bytes()
        except FileNotFoundError:
            return False
        tmp = path.with_name(path.name + ".1.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path.with_name(path.name + ".1"))
        with open(path, "r+b") as fh:
            fh.truncate(0)
        return True

    def rotate_all(self) -> None:
        """Rotate every unit's file that is over the bound (called periodically)."""
        for path in self.directory.glob("*.log"):
            self.rotate_if_needed(path.name[: -len(".log")])

    def exists(self, unit: str) -> bool:
        """True if ``unit`` ever logged here."""
        return self.path(unit).exists()

    def tail(self, unit: str, lines: int = 10) -> list[str]:
        """The last ``lines`` lines of ``unit``'s journal (both generations)."""
        path = self.path(unit)
        if not path.exists():
            raise NotFoundError(f"no journal for {unit} on this machine",
                                hint="the unit has not run here; `shipmate fleet list-units` "
                                     "shows where it runs")
        data = b""
        with contextlib.suppress(FileNotFoundError):
            data = path.with_name(path.name + ".1").read_bytes()
        data += path.read_bytes()
        return last_lines(data, lines)

    async def follow(self, unit: str, lines: int = 10) -> AsyncIterator[str]:
        """The last ``lines`` lines, then new lines as they are written (until cancelled)."""
        for line in self.tail(unit, lines):
            yield line
        path = self.path(unit)
        offset = path.stat().st_size
        partial = b""
        while True:
            await asyncio.sleep(FOLLOW_POLL)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            if size < offset:  # rotated: start over at the top of the fresh file
                offset, partial = 0, b""
            if size == offset:
                continue
            chunk = _read_range(path, offset, size - offset)
            offset += len(chunk)
            *complete, partial = (partial + chunk).split(b"\n")
            for raw in complete:
                yield raw.decode(errors="replace")
