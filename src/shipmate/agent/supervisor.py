"""The process supervisor: there is no systemd on Shipmate's machines, the agent is the init.

Each ``.service`` unit gets a :class:`~shipmate.agent.runner.Runner` (its life as systemd
would run it). What a daemon restart must not lose is written to ``STATE/units/NAME.json``
at every change: the unit's config, phase, main PID and that process's start time. A new
:class:`Supervisor` over the same state dir :meth:`~Supervisor.open`\\ s those records and
*adopts* each main process that still runs (same PID, same start time): it is watched, not
restarted. A unit whose process died while no daemon watched is handled as an exit with an
unknown status (ExecStop/ExecStopPost, then ``Restart=``).

:meth:`Supervisor.close` detaches: processes keep running for the next daemon to adopt.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shipmate.agent import process
from shipmate.agent.journal import Journal
from shipmate.agent.runner import Adopted, Runner, UnitStatus
from shipmate.agent.service import ServiceConfig, config_from_json, config_to_json
from shipmate.errors import ShipmateError
from shipmate.spec.unitname import parse_unit_name

log = logging.getLogger(__name__)
IDLE_PHASES = ("failed", "dead", "exited")


class Supervisor:
    """Runs, stops, adopts and reports this machine's process units."""

    def __init__(self, state_dir: Path, *, journal: Journal | None = None,
                 on_change: Callable[[str], None] | None = None) -> None:
        self.units_dir = Path(state_dir) / "units"
        self.units_dir.mkdir(parents=True, exist_ok=True)
        self.journal = journal or Journal(Path(state_dir) / "journal")
        self.on_change = on_change
        self._runners: dict[str, Runner] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    # --- queries ----------------------------------------------------------------------

    def names(self) -> set[str]:
        """Units this supervisor knows (running, failed or finished)."""
        return set(self._runners)

    def status(self, name: str) -> UnitStatus | None:
        """The unit's current status, or None if it is not here."""
        runner = self._runners.get(name)
        return runner.status if runner else None

    def statuses(self) -> dict[str, UnitStatus]:
        """Every unit's status."""
        return {name: r.status for name, r in self._runners.items()}

    def config(self, name: str) -> ServiceConfig | None:
        """The config the unit runs with."""
        runner = self._runners.get(name)
        return runner.config if runner else None

    # --- actions ----------------------------------------------------------------------

    async def open(self) -> list[str]:
        """Read the state records and adopt what still runs. Returns the adopted names."""
        adopted = []
        for path in sorted(self.units_dir.glob("*.json")):
            try:
                record = json.loads(path.read_text())
                name = parse_unit_name(record["config"]["name"]).full
                config = config_from_json(record["config"])
            except (ValueError, KeyError, TypeError, ShipmateError) as exc:
                log.warning("ignoring unreadable unit record %s: %s", path, exc)
                continue
            if name in self._runners:
                continue
            pid, started = int(record.get("main_pid", 0)), int(record.get("start_time", 0))
            phase = str(record.get("phase", "dead"))
            if pid and process.alive(pid, started):
                self.journal.note(name, f"Adopted {name} (main PID {pid}).")
                adopted.append(name)
                self._launch(config, Adopted(pid, started, int(record.get("restarts", 0))))
            elif phase in IDLE_PHASES:
                self._launch(config, None, idle_phase=phase)
            else:  # it was running and died while no daemon watched
                self._launch(config, Adopted(0, 0, int(record.get("restarts", 0))))
        return adopted

    async def start(self, config: ServiceConfig) -> None:
        """Make ``config.name`` run with ``config``: nothing if it already does (in whatever
        phase: a failed unit is restarted by stop + start, as with systemd); a unit running
        an older config is stopped first."""
        parse_unit_name(config.name)
        current = self._runners.get(config.name)
        if current is not None:
            if current.config.digest == config.digest:
                return
            await self.stop(config.name)
        self._launch(config, None)

    async def stop(self, name: str) -> None:
        """Stop the unit (ExecStop, SIGTERM, SIGKILL, ExecStopPost) and forget it."""
        runner = self._runners.get(name)
        if runner is None:
            return
        runner.request_stop()
        task = self._tasks.get(name)
        if task is not None:
            await asyncio.shield(task)
        self._runners.pop(name, None)
        self._tasks.pop(name, None)
        with contextlib.suppress(FileNotFoundError):
            self._record_path(name).unlink()
        self._notify(name)

    async def stop_all(self) -> None:
        """Stop every unit, concurrently."""
        await asyncio.gather(*(self.stop(name) for name in list(self._runners)))

    async def restart(self, name: str) -> None:
        """Stop and start again with the same config."""
        config = self.config(name)
        if config is not None:
            await self.stop(name)
            self._launch(config, None)

    async def close(self) -> None:
        """Detach: stop watching, leave every process running for the next daemon."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self._runners.clear()

    # --- internals --------------------------------------------------------------------

    def _launch(self, config: ServiceConfig, adopted: Adopted | None,
                idle_phase: str | None = None) -> None:
        runner = Runner(config, self.journal, self._changed, adopted,
                        phase=idle_phase or ("running" if adopted and adopted.pid else "dead"))
        self._runners[config.name] = runner
        self._tasks[config.name] = asyncio.create_task(
            self._guard(runner, idle_phase is not None), name=f"unit:{config.name}")
        self._write(runner)

    async def _guard(self, runner: Runner, idle: bool) -> None:
        """Run a unit; a bug in one unit's runner marks it failed instead of vanishing."""
        try:
            await runner.run(idle=idle)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("supervising %s failed", runner.config.name)
            runner.status = UnitStatus(
                runner.config.name, "failed", digest=runner.config.digest,
                result=f"internal error: {exc}")
            self._changed(runner)

    def _changed(self, runner: Runner) -> None:
        if self._runners.get(runner.config.name) is runner and not runner.stopping:
            self._write(runner)
        self._notify(runner.config.name)

    def _notify(self, name: str) -> None:
        if self.on_change is not None:
            try:
                self.on_change(name)
            except Exception:
                log.exception("unit change callback failed for %s", name)

    def _record_path(self, name: str) -> Path:
        return self.units_dir / f"{name}.json"

    def _write(self, runner: Runner) -> None:
        """Persist what a restarted daemon needs, atomically."""
        st = runner.status
        record: dict[str, Any] = {
            "config": config_to_json(runner.config), "phase": st.phase,
            "main_pid": st.main_pid, "start_time": runner.main_start_time if st.main_pid else 0,
            "restarts": st.restarts, "result": st.result,
        }
        path = self._record_path(runner.config.name)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(record, indent=1))
        os.replace(tmp, path)
