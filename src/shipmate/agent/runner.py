"""One ``.service`` unit's life, as systemd runs it: ExecStartPre (in order), ExecStart,
ExecStartPost, then the main process until it exits or a stop is asked; on the way down
ExecStop, SIGTERM to the unit's process group, SIGKILL after ``TimeoutStopSec=``, then
ExecStopPost; then ``Restart=`` with capped exponential backoff.

The decisions (restart or not, how long to wait, which ACTIVE/SUB a phase shows) come from
:mod:`shipmate.agent.service`; this module carries them out with processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from shipmate import metrics
from shipmate.agent import process
from shipmate.agent.journal import Journal
from shipmate.agent.service import (
    PHASES,
    Command,
    ExitStatus,
    ServiceConfig,
    backoff_delay,
    next_attempt,
    parse_environment_file,
    should_restart,
    substitute_env,
)
from shipmate.clock import within

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RESOURCES_FAILED = 209  # an EnvironmentFile= is missing, as systemd's EXIT_... family


@dataclasses.dataclass(frozen=True)
class UnitStatus:
    """What ``list-units`` and ``status`` show about one process unit."""

    name: str
    phase: str
    main_pid: int = 0
    digest: str = ""
    since: float = 0.0  # wall-clock time of the last phase change
    restarts: int = 0
    result: str = ""  # how the last main process (or start) ended

    @property
    def active(self) -> str:
        """systemd's ACTIVE column."""
        return PHASES[self.phase][0]

    @property
    def sub(self) -> str:
        """systemd's SUB column."""
        return PHASES[self.phase][1]

    def to_json(self) -> dict[str, object]:
        """JSON-able form for the API."""
        return {**dataclasses.asdict(self), "active": self.active, "sub": self.sub}


@dataclasses.dataclass
class Adopted:
    """A main process found running after a daemon restart."""

    pid: int
    start_time: int
    restarts: int = 0


class StartFailed(Exception):
    """A start step failed (internal to the runner)."""

    def __init__(self, status: ExitStatus) -> None:
        super().__init__(status.describe())
        self.status = status


class Runner:
    """Runs one unit until :meth:`request_stop`; reports each change through ``on_change``."""

    def __init__(self, config: ServiceConfig, journal: Journal,
                 on_change: Callable[[Runner], None], adopted: Adopted | None = None,
                 phase: str = "dead") -> None:
        self.config = config
        self.journal = journal
        self.on_change = on_change
        self.adopted = adopted
        self.status = UnitStatus(config.name, phase, digest=config.digest, since=time.time(),
                                 restarts=adopted.restarts if adopted else 0,
                                 main_pid=adopted.pid if adopted else 0)
        self.main_start_time = adopted.start_time if adopted else 0
        self._stop = asyncio.Event()
        self._main: subprocess.Popen[bytes] | None = None

    @property
    def stopping(self) -> bool:
        """True once a stop was asked."""
        return self._stop.is_set()

    def request_stop(self) -> None:
        """Ask the unit to stop; :meth:`run` returns when it has."""
        self._stop.set()

    def _set(self, phase: str, **changes: object) -> None:
        self.status = dataclasses.replace(self.status, phase=phase, since=time.time(),
                                          **changes)  # type: ignore[arg-type]
        self.on_change(self)

    def _log(self, message: str) -> None:
        self.journal.note(self.config.name, message)

    # --- the loop ---------------------------------------------------------------------

    async def run(self, *, idle: bool = False) -> None:
        """Start (or watch the adopted process), restart per policy, until stopped. With
        ``idle`` (a failed or finished unit found after a daemon restart) only wait."""
        attempt = 0
        while not idle and not self.stopping:
            began = time.monotonic()
            status = await self._one_run()
            if self.stopping or status is None:
                break
            attempt = next_attempt(attempt, time.monotonic() - began)
            if not should_restart(self.config.restart, status):
                self._set("dead" if status.clean else "failed", main_pid=0)
                break
            delay = backoff_delay(self.config.restart_sec, attempt, self.config.restart_max_sec)
            self._log(f"{self.config.name}: Scheduled restart job in {delay:g}s "
                      f"(restart counter is at {self.status.restarts + 1}).")
            self._set("auto-restart", main_pid=0, restarts=self.status.restarts + 1)
            metrics.AGENT_UNIT_RESTARTS.inc(kind="service")
            with contextlib.suppress(TimeoutError):
                await within(self._stop.wait(), delay)
        await self._stop.wait()
        if self.status.phase in ("exited",):
            await self._stop_sequence(main_alive=False)
        if self.status.phase not in ("dead", "failed"):
            self._set("dead", main_pid=0)

    async def _one_run(self) -> ExitStatus | None:
        """One start-to-exit cycle. Returns how it ended, or None if it was stopped."""
        if self.adopted is not None:
            adopted, self.adopted = self.adopted, None
            return await self._supervise_main(adopted.pid, adopted.start_time, None)
        try:
            env = self._environment()
            self._set("start-pre")
            await self._run_all(self.config.exec_start_pre, env)
            if self.config.type == "oneshot":
                return await self._run_oneshot(env)
            pid, started = self._spawn_main(env)
        except StartFailed as exc:
            self._log(f"{self.config.name}: Failed to start: {exc.status.describe()}")
            self._set("stop-post", result=exc.status.describe())
            await self._run_all(self.config.exec_stop_post, self._safe_env(), check=False)
            return None if self.stopping else exc.status
        return await self._supervise_main(pid, started, self._main)

    async def _supervise_main(self, pid: int, started: int,
                              child: subprocess.Popen[bytes] | None) -> ExitStatus | None:
        self.main_start_time = started
        self._set("running", main_pid=pid)
        waiter = asyncio.ensure_future(process.wait_exit(pid, started, child))
        try:
            failed = await self._start_post(pid, child, waiter)
            if failed is None:
                await self._until_exit_or_stop(waiter)
        finally:
            if not waiter.done() and not self.stopping:
                waiter.cancel()  # daemon shutdown: the process keeps running, to be adopted
        if failed is not None:
            await self._stop_sequence(main_alive=not waiter.done(), pid=pid, waiter=waiter)
            return None if self.stopping else failed
        if self.stopping and not waiter.done():
            await self._stop_sequence(main_alive=True, pid=pid, waiter=waiter)
            return None
        status = waiter.result()
        self._log(f"{self.config.name}: Main process exited, {status.describe()}")
        self._set("stop", main_pid=0, result=status.describe())
        await self._stop_sequence(main_alive=False, pid=pid)
        return None if self.stopping else status

    async def _start_post(self, pid: int, child: subprocess.Popen[bytes] | None,
                          waiter: asyncio.Future[ExitStatus]) -> ExitStatus | None:
        """ExecStartPost= (not for an adopted process: it ran when the unit started)."""
        if not self.config.exec_start_post or child is None:
            return None
        self._set("start-post", main_pid=pid)
        try:
            await self._run_all(self.config.exec_start_post, self._main_env(pid))
        except StartFailed as exc:
            return exc.status
        if not waiter.done():
            self._set("running", main_pid=pid)
        return None

    async def _until_exit_or_stop(self, waiter: asyncio.Future[ExitStatus]) -> None:
        stopper = asyncio.ensure_future(self._stop.wait())
        both: list[asyncio.Future[Any]] = [waiter, stopper]
        try:
            await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()

    async def _run_oneshot(self, env: Mapping[str, str]) -> ExitStatus | None:
        self._set("start")
        await self._run_all(self.config.exec_start, env)
        self._set("start-post")
        await self._run_all(self.config.exec_start_post, env)
        if self.config.remain_after_exit:
            self._set("exited", result="code=exited, status=0")
            return None
        self._set("dead", result="code=exited, status=0")
        return ExitStatus(code=0)

    # --- steps ------------------------------------------------------------------------

    def _spawn_main(self, env: Mapping[str, str]) -> tuple[int, int]:
        cmd = self.config.exec_start[0]
        argv = substitute_env(cmd.argv, env)
        fd = self.journal.open_append(self.config.name)
        try:
            self._main = process.spawn(argv, env, self._cwd(), fd)
        except OSError as exc:
            self._log(f"{self.config.name}: Failed to execute {argv[0]}: {exc.strerror}")
            raise StartFailed(ExitStatus(code=process.EXEC_FAILED)) from exc
        finally:
            os.close(fd)
        started = process.start_time(self._main.pid) or 0
        self._log(f"Started {self.config.name} (main PID {self._main.pid}).")
        return self._main.pid, started

    async def _run_all(self, commands: tuple[Command, ...], env: Mapping[str, str],
                       *, check: bool = True) -> None:
        """Run control commands in order; a failing one without ``-`` raises StartFailed."""
        for cmd in commands:
            if check and self.stopping:
                raise StartFailed(ExitStatus(signal=signal.SIGTERM))
            argv = substitute_env(cmd.argv, env)
            fd = self.journal.open_append(self.config.name)
            try:
                status = await process.run_command(argv, env, self._cwd(), fd,
                                                   self.config.timeout_start)
            finally:
                os.close(fd)
            if not status.known or status.code == 0:
                continue
            self._log(f"{self.config.name}: {cmd.render()} failed: {status.describe()}"
                      + (" (ignored)" if cmd.ignore_failure else ""))
            if check and not cmd.ignore_failure:
                raise StartFailed(status)

    async def _stop_sequence(self, *, main_alive: bool, pid: int = 0,
                             waiter: asyncio.Future[ExitStatus] | None = None) -> None:
        """ExecStop, SIGTERM the group, SIGKILL after the timeout, ExecStopPost."""
        if self.stopping:
            self._log(f"Stopping {self.config.name}...")
        self._set("stop", main_pid=pid if main_alive else 0)
        env = self._main_env(pid) if main_alive else self._safe_env()
        await self._run_all(self.config.exec_stop, env, check=False)
        if pid:
            await self._terminate(pid, waiter)
        self._set("stop-post", main_pid=0)
        await self._run_all(self.config.exec_stop_post, self._safe_env(), check=False)
        if self.stopping:
            self._log(f"Stopped {self.config.name}.")

    async def _terminate(self, pid: int, waiter: asyncio.Future[ExitStatus] | None) -> None:
        """SIGTERM the unit's process group, then SIGKILL what is left after the timeout
        (systemd's KillMode=control-group, with the session standing in for the cgroup)."""
        if not process.signal_group(pid, signal.SIGTERM):
            return
        self._set("stop-sigterm", main_pid=pid if waiter else 0)
        if waiter is not None:
            try:
                await within(asyncio.shield(waiter), self.config.timeout_stop)
            except TimeoutError:
                self._log(f"{self.config.name}: State 'stop-sigterm' timed out. Killing.")
                self._set("stop-sigkill", main_pid=pid)
                process.signal_group(pid, signal.SIGKILL)
                with contextlib.suppress(TimeoutError):
                    await within(waiter, 5)
        else:  # the main process is gone; give what it left behind a moment
            deadline = time.monotonic() + min(1.0, self.config.timeout_stop)
            while process.signal_group(pid, 0) and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        process.signal_group(pid, signal.SIGKILL)

    # --- environment --------------------------------------------------------------------

    def _cwd(self) -> str | None:
        wd = self.config.working_directory
        if wd and wd.startswith("-"):
            return wd[1:] if Path(wd[1:]).is_dir() else None
        return wd

    def _environment(self) -> dict[str, str]:
        """PATH, the unit's EnvironmentFile= (read now, as systemd does at each start),
        then its Environment= (which wins)."""
        env = {"PATH": BASE_PATH}
        if "HOME" in os.environ:
            env["HOME"] = os.environ["HOME"]
        for path, optional in self.config.environment_files:
            try:
                env.update(parse_environment_file(Path(path).read_text()))
            except OSError as exc:
                if optional:
                    continue
                self._log(f"{self.config.name}: Failed to load environment file {path}: "
                          f"{exc.strerror}")
                raise StartFailed(ExitStatus(code=RESOURCES_FAILED)) from exc
        env.update(self.config.environment)
        return env

    def _safe_env(self) -> dict[str, str]:
        try:
            return self._environment()
        except StartFailed:
            return {"PATH": BASE_PATH, **dict(self.config.environment)}

    def _main_env(self, pid: int) -> dict[str, str]:
        return {**self._safe_env(), "MAINPID": str(pid)}
