"""Processes for the supervisor: spawn, identify, wait for, signal. Linux only.

A process is identified by its PID *and* its start time (``/proc/PID/stat`` field 22, clock
ticks since boot), so a PID reused by an unrelated process after a reboot or a long downtime
is never adopted. Waiting works for processes that are not our children (adopted after a
daemon restart) through ``pidfd_open``, polling ``/proc`` where that is unavailable; only a
child's exit status can be read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence

from shipmate.agent.service import ExitStatus
from shipmate.clock import within

EXEC_FAILED = 203  # systemd's status for "could not execute the program"
POLL_INTERVAL = 0.5


def start_time(pid: int) -> int | None:
    """The start time of live process ``pid``, or None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = stat[stat.rfind(")") + 2:].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def alive(pid: int, started: int) -> bool:
    """True while the process that started at ``started`` still runs as ``pid``."""
    return pid > 0 and start_time(pid) == started


def spawn(argv: Sequence[str], env: Mapping[str, str], cwd: str | None,
          log_fd: int) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session (so it outlives the daemon and its group can be
    signalled as one), output to ``log_fd``, input from /dev/null. Never through a shell."""
    return subprocess.Popen(
        list(argv), stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd,
        env=dict(env), cwd=cwd or "/", start_new_session=True, close_fds=True,
    )


async def wait_exit(pid: int, started: int, child: subprocess.Popen[bytes] | None) -> ExitStatus:
    """Wait for the process to end. For our own child the exit status is known."""
    try:
        fd = os.pidfd_open(pid)
    except (OSError, AttributeError):
        fd = -1
    try:
        if fd >= 0 and alive(pid, started):
            loop = asyncio.get_running_loop()
            done: asyncio.Future[None] = loop.create_future()

            def ready() -> None:
                if not done.done():
                    done.set_result(None)

            loop.add_reader(fd, ready)
            try:
                await done
            finally:
                loop.remove_reader(fd)
        else:
            while alive(pid, started):  # noqa: ASYNC110 - no pidfd: poll /proc
                await asyncio.sleep(POLL_INTERVAL)
    finally:
        if fd >= 0:
            os.close(fd)
    return await _reap(child)


async def _reap(child: subprocess.Popen[bytes] | None) -> ExitStatus:
    if child is None:
        return ExitStatus()
    for _ in range(100):  # the exit is visible a moment before the zombie can be reaped
        rc = child.poll()
        if rc is not None:
            return ExitStatus.from_returncode(rc)
        await asyncio.sleep(0.01)
    return ExitStatus()


def signal_group(pid: int, sig: int) -> bool:
    """Send ``sig`` to the process group led by ``pid`` (the unit's session); False if no
    process of it is left."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


async def run_command(argv: Sequence[str], env: Mapping[str, str], cwd: str | None,
                      log_fd: int, timeout: float) -> ExitStatus:
    """Run a control command (``ExecStartPre=`` etc.) to completion; killed after
    ``timeout``. A program that cannot be executed gives status 203, as in systemd."""
    try:
        child = spawn(argv, env, cwd, log_fd)
    except OSError as exc:
        os.write(log_fd, f"shipmate: cannot execute {argv[0]}: {exc.strerror}\n".encode())
        return ExitStatus(code=EXEC_FAILED)
    started = start_time(child.pid)
    if started is None:  # already over
        return await _reap(child)
    try:
        return await within(wait_exit(child.pid, started, child), timeout)
    except TimeoutError:
        signal_group(child.pid, signal.SIGKILL)
        return await _reap(child)
    except asyncio.CancelledError:
        signal_group(child.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            child.wait(1)
        raise
