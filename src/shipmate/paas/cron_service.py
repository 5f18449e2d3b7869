"""The ``cron:*`` commands: list an app's scheduled tasks, run one now, suspend and resume
(records and firing in :mod:`.cron_runner`)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from shipmate.errors import NotFoundError, ShipmateError, ValidationError
from shipmate.paas import cron
from shipmate.paas.cron_runner import CronRunner, runs_key, state_key
from shipmate.paas.model import Release
from shipmate.paas.state import PaasState
from shipmate.store.base import Compare, Op, Store

_CAS_TRIES = 20


class CronTasks:
    """What ``cron:list``, ``cron:run``, ``cron:suspend`` and ``cron:resume`` do."""

    def __init__(self, store: Store, runner: CronRunner) -> None:
        self.store, self.runner = store, runner
        self.state = PaasState(store)

    async def _entries(self, app: str) -> tuple[Release | None, tuple[cron.CronEntry, ...]]:
        await self.state.get_app(app)
        release = await self.state.current(app)
        return release, cron.entries_of(release.cron) if release else ()

    async def _entry(self, app: str, entry_id: str) -> tuple[Release, cron.CronEntry]:
        cron.validate_id(entry_id)
        release, entries = await self._entries(app)
        found = next((e for e in entries if e.id == entry_id), None)
        if release is None or found is None:
            raise NotFoundError(f"No cron task {entry_id} for {app}",
                                hint=f"`cron:list {app}` shows its tasks' ids")
        return release, found

    async def list(self, app: str) -> list[dict[str, Any]]:
        """``cron:list``: each entry of the current release, its next run and its runs."""
        _, entries = await self._entries(app)
        now = self.runner.now()
        rows = []
        for entry in entries:
            kv = await self.store.get(state_key(app, entry.id))
            state = cron.EntryState.from_json(kv.value) if kv else cron.EntryState()
            runs_kv = await self.store.get(runs_key(app, entry.id))
            runs = cron.history_from_json(runs_kv.value) if runs_kv else []
            nxt = cron.next_run(entry.parsed(), now)
            paused = state.suspended or entry.maintenance
            rows.append({
                "id": entry.id, "app": app, "schedule": entry.schedule,
                "command": entry.command, "suspended": state.suspended,
                "maintenance": entry.maintenance,
                "next_run": cron.iso(nxt) if nxt and not paused else "",
                "last_run": runs[-1].to_json() if runs else None,
                "runs": [r.to_json() for r in runs]})
        return rows

    async def set_suspended(self, app: str, entry_id: str, suspended: bool) -> dict[str, Any]:
        """``cron:suspend`` / ``cron:resume``. A resumed entry runs from its next slot on:
        the slots it missed while suspended are not run late."""
        _, entry = await self._entry(app, entry_id)
        if not suspended and entry.maintenance:
            raise ValidationError(f"cron task {entry_id} of {app} is in maintenance in "
                                  "app.json", hint='remove "maintenance": true from its '
                                  "entry and deploy")
        key = state_key(app, entry_id)
        for _ in range(_CAS_TRIES):
            kv = await self.store.get(key)
            old = cron.EntryState.from_json(kv.value) if kv else cron.EntryState()
            new = dataclasses.replace(old, suspended=suspended)
            if old.suspended and not suspended:
                new = dataclasses.replace(new, since=self.runner.wall())
            res = await self.store.txn([Compare.mod_is(key, kv.mod_revision if kv else 0)],
                                       [Op.put(key, new.to_json())])
            if res.succeeded:
                return {"id": entry_id, "app": app, "suspended": suspended,
                        "changed": old.suspended != suspended}
        raise ShipmateError(f"the record of cron task {entry_id} kept changing",
                            hint="try again")

    async def run_now(self, app: str, entry_id: str, *, detach: bool = False
                      ) -> AsyncIterator[str]:
        """``cron:run``: run the entry once, now, on this machine (its run is recorded as
        manual; the schedule is not touched). Yields its output, then ``\\0exit N``."""
        release, entry = await self._entry(app, entry_id)  # a 404 before the stream starts
        return self._run(app, release, entry, detach)

    async def _run(self, app: str, release: Release, entry: cron.CronEntry, detach: bool
                   ) -> AsyncIterator[str]:
        yield f"-----> Running cron task {entry.id} of {app}: {entry.command}"
        if detach:
            self.runner.start(app, release, entry, "manual", None)
            yield "       started in the background; `cron:list` shows its result"
            yield "\0exit 0"
            return
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        async def work() -> cron.RunRecord:
            try:
                return await self.runner.execute(app, release, entry, "manual", None,
                                                 queue.put_nowait)
            finally:
                queue.put_nowait(None)

        task = asyncio.ensure_future(work())
        self.runner.running.add(task)  # runs out even if the client goes away
        task.add_done_callback(self.runner.running.discard)
        while (line := await queue.get()) is not None:
            yield line
        record = await task
        if record.error:
            yield f" !     {record.error}"
        yield f"\0exit {record.exit_code if record.exit_code is not None else 1}"
