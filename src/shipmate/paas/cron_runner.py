"""Scheduled tasks, the I/O part: the scheduler leader's cron loop and the runs it starts
(rules in :mod:`.cron`; the user's commands in :mod:`.cron_service`).

Keys (JSON values), under the app's records so ``apps:destroy`` and ``apps:rename`` take
them along:

- ``/shipmate/apps/<app>/cron/<id>``       :class:`~.cron.EntryState`: last slot, suspended
- ``/shipmate/apps/<app>/cron-runs/<id>``  the last runs (:class:`~.cron.RunRecord` list)

Exactly once across a cluster: only the scheduler leader fires, and it fires slot T of an
entry only after one transaction succeeds that compares its leadership (the leader key's
revision, :meth:`Leadership.fence`) and the entry's record (unchanged since it read a slot
before T) and writes T. A deposed leader fails the first compare; of two machines that both
still think they lead, only one can move the record. A new leader reads the record and fires
the latest due slot not recorded yet, so a leader change neither skips nor doubles a run
(within ``cron_grace``; a slot later than that is recorded unrun and logged). The run's
one-off container starts on the leader's machine, which fetches the release's image from a
peer when it lacks it; a run already started when the leadership moves runs to its end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from shipmate.clock import Clock, SystemClock
from shipmate.engine.base import Engine
from shipmate.errors import EngineError, ShipmateError, StoreError
from shipmate.paas import cron
from shipmate.paas.model import Release
from shipmate.paas.state import APPS, app_key
from shipmate.paas.units import APP_LABEL
from shipmate.scheduler.election import Leadership
from shipmate.store.base import Compare, Op, Store

log = logging.getLogger(__name__)
Emit = Callable[[str], None]
_CAS_TRIES = 20


def state_key(app: str, entry_id: str) -> str:
    """Where an entry's last slot and suspended flag are kept."""
    return app_key(app, f"cron/{cron.validate_id(entry_id)}")


def runs_key(app: str, entry_id: str) -> str:
    """Where an entry's recent runs are kept."""
    return app_key(app, f"cron-runs/{cron.validate_id(entry_id)}")


class Executor(Protocol):
    """Runs a command in a one-off container of a release; (exit code, output)."""

    async def run(self, app: str, release: Release, command: str, env: Mapping[str, str],
                  on_line: Emit | None) -> tuple[int, str]:
        """Raises ShipmateError when the container cannot run at all."""
        ...


class OneOff(Protocol):
    """:meth:`shipmate.paas.deploy.Deployer.one_off`."""

    async def __call__(self, app: str, release: Release, argv: list[str],
                       on_line: Emit | None = None, *, env: Mapping[str, str] | None = None,
                       labels: Mapping[str, str] | None = None) -> tuple[int, str]: ...


class ImageFetcher(Protocol):
    """Gets an image this machine lacks from a peer (the daemon's ``PeerImages``)."""

    async def fetch(self, ref: str, labels: Mapping[str, str],
                    progress: Callable[[str], None]) -> None: ...


@dataclasses.dataclass(frozen=True)
class OneOffExecutor:
    """Runs on this machine, as ``run APP CMD`` does, after fetching a missing image."""

    one_off: OneOff
    engine: Engine | None
    fetcher: ImageFetcher | None = None

    async def run(self, app: str, release: Release, command: str, env: Mapping[str, str],
                  on_line: Emit | None) -> tuple[int, str]:
        """Run ``command`` through ``/bin/sh -c`` (a Procfile type's name runs its command)."""
        if self.engine is None:
            raise EngineError("no Docker engine on this machine")
        if await self.engine.image(release.image) is None:
            if self.fetcher is None:
                raise EngineError(f"the image of {app} {release.label} is not on this machine")
            await self.fetcher.fetch(release.image, {APP_LABEL: app},
                                     lambda line: log.info("cron %s: %s", app, line))
        argv = ["/bin/sh", "-c", cron.resolve_command(command, release.processes)]
        return await self.one_off(app, release, argv, on_line, env=env,
                                  labels={"shipmate.cron": env.get("SHIPMATE_CRON_ID", "")})


@dataclasses.dataclass(frozen=True)
class Job:
    """An entry of an app's current release, with its record as read."""

    app: str
    release: Release
    entry: cron.CronEntry
    state: cron.EntryState
    state_mod: int  # the record's mod revision (0: none yet)


class CronRunner:
    """Fires due entries while leading (:meth:`lead`, a scheduler leader task) and runs
    entries on demand (:meth:`execute`)."""

    def __init__(self, store: Store, executor: Executor, machine_id: str, *,
                 clock: Clock | None = None, wall: Callable[[], float] = time.time,
                 grace: float = 300.0, interval: float = 5.0) -> None:
        self.store, self.executor, self.machine_id = store, executor, machine_id
        self.clock: Clock = clock or SystemClock()
        self.wall, self.grace, self.interval = wall, grace, interval
        #: Runs in flight on this machine; kept past a leadership change (they run out).
        self.running: set[asyncio.Task[cron.RunRecord]] = set()
        #: For tests and reports: slots fired here, passes made, leader loops running, and
        #: the clock time the loop sleeps until (0 while a pass runs).
        self.fired = self.passes = self.leading = 0
        self.asleep_until = 0.0

    def now(self) -> dt.datetime:
        """Wall-clock time, UTC."""
        return dt.datetime.fromtimestamp(self.wall(), dt.UTC)

    async def lead(self, leadership: Leadership) -> None:
        """The leader's loop: a pass at every slot and every ``interval`` seconds (deploys,
        suspends and a predecessor's records are read each pass); until cancelled."""
        self.leading += 1
        try:
            await self._lead(leadership)
        finally:
            self.leading -= 1

    async def _lead(self, leadership: Leadership) -> None:
        while True:
            wait = self.interval
            try:
                wait = await self.tick(leadership)
            except StoreError as exc:
                log.warning("cron: pass failed: %s", exc)
            except Exception:  # a fault here must not cost the cluster its scheduler
                log.exception("cron: pass failed")
            self.passes += 1
            self.asleep_until = self.clock.now() + wait
            try:
                await self.clock.sleep(wait)
            finally:
                self.asleep_until = 0.0

    async def tick(self, leadership: Leadership) -> float:
        """One pass: fire what is due; returns the seconds until the next pass."""
        now = self.now()
        jobs = await self.jobs()
        for job in jobs:
            if job.state.suspended or job.entry.maintenance:
                continue
            decision = cron.decide(job.entry.parsed(), job.state, job.release.created, now,
                                   self.grace)
            if decision is not None and await self._claim(job, decision, leadership):
                self._note(job, decision, now)
                if decision.fire:
                    self.fired += 1
                    self.start(job.app, job.release, job.entry, "schedule", decision.slot)
        return self._until_next(jobs, now)

    def _note(self, job: Job, decision: cron.Decision, now: dt.datetime) -> None:
        where = f"{job.app} {job.entry.id} ({job.entry.schedule})"
        if decision.missed:
            log.warning("cron: %s: %d earlier run(s) missed, skipped", where, decision.missed)
        if not decision.fire:
            late = (now - decision.slot).total_seconds()
            log.warning("cron: %s: run of %s skipped, %.1fs late (cron_grace %gs)", where,
                        cron.iso(decision.slot), late, self.grace)

    def _until_next(self, jobs: list[Job], now: dt.datetime) -> float:
        nexts = [n for job in jobs if (n := cron.next_run(job.entry.parsed(), now))]
        if not nexts:
            return self.interval
        # just past the minute, so that the slot is due when the pass reads the time
        until = (min(nexts) - now).total_seconds() + 0.001
        return max(0.001, min(self.interval, until))

    async def jobs(self) -> list[Job]:
        """Every entry of every app's current release, with its record (one read)."""
        kvs, _ = await self.store.range(APPS)
        by_key = {kv.key: kv for kv in kvs}
        out: list[Job] = []
        for kv in kvs:
            app, _, part = kv.key[len(APPS):].partition("/")
            if part != "current":
                continue
            release_kv = by_key.get(f"{APPS}{app}/releases/{_version(kv.value):06d}")
            if release_kv is None:
                continue
            release = Release.from_json(release_kv.value)
            for entry in cron.entries_of(release.cron):
                st = by_key.get(state_key(app, entry.id))
                state = cron.EntryState.from_json(st.value) if st else cron.EntryState()
                out.append(Job(app, release, entry, state, st.mod_revision if st else 0))
        return out

    async def _claim(self, job: Job, decision: cron.Decision, leadership: Leadership) -> bool:
        """Record the slot, if this machine still leads and nobody recorded one since."""
        key = state_key(job.app, job.entry.id)
        new = dataclasses.replace(job.state, slot=cron.iso(decision.slot), by=self.machine_id)
        res = await self.store.txn([leadership.fence(), Compare.mod_is(key, job.state_mod)],
                                   [Op.put(key, new.to_json())])
        return res.succeeded

    def start(self, app: str, release: Release, entry: cron.CronEntry, trigger: str,
              slot: dt.datetime | None) -> asyncio.Task[cron.RunRecord]:
        """Run ``entry`` in the background; the task's result is its record."""
        task = asyncio.ensure_future(self.execute(app, release, entry, trigger, slot))
        self.running.add(task)
        task.add_done_callback(self.running.discard)
        return task

    async def execute(self, app: str, release: Release, entry: cron.CronEntry, trigger: str,
                      slot: dt.datetime | None, on_line: Emit | None = None) -> cron.RunRecord:
        """Run ``entry`` once here, recording the run as it starts and when it ends."""
        record = cron.RunRecord(run=secrets.token_hex(6), trigger=trigger,
                                slot=cron.iso(slot) if slot else "", machine=self.machine_id,
                                started=self.wall())
        await self._save(app, entry.id, record)
        env = {"SHIPMATE_CRON_ID": entry.id, "SHIPMATE_CRON_SLOT": record.slot}
        began = self.clock.now()
        try:
            code, out = await self.executor.run(app, release, entry.command, env, on_line)
            record = dataclasses.replace(record, exit_code=code, output=cron.tail(out),
                                         duration=round(self.clock.now() - began, 3))
        except ShipmateError as exc:
            record = dataclasses.replace(record, error=exc.message[:300],
                                         duration=round(self.clock.now() - began, 3))
        log.info("cron: %s %s %s%s: %s", app, entry.id, trigger,
                 f" of {record.slot}" if record.slot else "", record.summary())
        await self._save(app, entry.id, record)
        return record

    async def _save(self, app: str, entry_id: str, record: cron.RunRecord) -> None:
        """Add or update ``record`` in the entry's history (compare-and-swap; a store fault
        is logged, never stops the run)."""
        key = runs_key(app, entry_id)
        try:
            for _ in range(_CAS_TRIES):
                kv = await self.store.get(key)
                history = cron.history_from_json(kv.value) if kv else []
                value = cron.history_to_json(cron.with_run(history, record))
                res = await self.store.txn([Compare.mod_is(key, kv.mod_revision if kv else 0)],
                                           [Op.put(key, value)])
                if res.succeeded:
                    return
            log.warning("cron: %s %s: run record kept changing; not saved", app, entry_id)
        except StoreError as exc:
            log.warning("cron: %s %s: run record not saved: %s", app, entry_id, exc)


def _version(value: bytes) -> int:
    data = json.loads(value)
    return int(data.get("version", 0)) if isinstance(data, dict) else 0
