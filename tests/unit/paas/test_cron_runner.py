"""The scheduler leader fires cron entries exactly once per slot (fake time): firing, leader
hand-over (no skip, no double), a deposed leader that still runs, grace, suspend/resume,
cron:run and cron:list, and running where the image is."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest

from shipmate.errors import EngineError, NotFoundError, ValidationError
from shipmate.paas import cron
from shipmate.paas.cron_runner import CronRunner, OneOffExecutor, runs_key, state_key
from shipmate.paas.cron_service import CronTasks
from shipmate.paas.model import Release
from shipmate.paas.state import PaasState
from shipmate.scheduler.election import Election, Leadership
from shipmate.scheduler.engine import SchedulerEngine
from shipmate.store.base import Store
from shipmate.testing import FakeClock, FakeEngine
from shipmate.testing.store import memory_store

from ..scheduler.conftest import CuttableStore

APP = "ticker"
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
START = 1000.0  # FakeClock's
ENTRY = cron.CronEntry("* * * * *", "echo tick $SHIPMATE_CRON_SLOT")


def minute(n: int) -> str:
    return cron.iso(T0 + dt.timedelta(minutes=n))


class Ran:
    """What the fake executor ran: (machine, slot, trigger env), in order."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, str]] = []
        self.hold: asyncio.Event | None = None

    def executor(self, machine: str) -> FakeRun:
        return FakeRun(self, machine)

    def slots(self) -> list[str]:
        return [slot for _, slot in self.runs]


class FakeRun:
    """Stands in for a one-off container: records the run, prints its slot, exits 0."""

    def __init__(self, ran: Ran, machine: str) -> None:
        self.ran, self.machine = ran, machine

    async def run(self, app: str, release: Release, command: str, env: Mapping[str, str],
                  on_line: Callable[[str], None] | None) -> tuple[int, str]:
        self.ran.runs.append((self.machine, env["SHIPMATE_CRON_SLOT"]))
        if self.ran.hold is not None:
            await self.ran.hold.wait()
        line = f"tick {env['SHIPMATE_CRON_SLOT']}"
        if on_line:
            on_line(line)
        return 0, line


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
async def store(clock: FakeClock) -> AsyncIterator[Store]:
    s = await memory_store(clock=clock)
    try:
        yield s
    finally:
        await s.close()


def wall_of(clock: FakeClock, offset: float = -0.5) -> Callable[[], float]:
    """Wall time that starts ``offset`` seconds from 12:00 and moves with ``clock``."""
    return lambda: T0.timestamp() + offset + (clock.now() - START)


async def deploy(store: Store, entries: tuple[cron.CronEntry, ...] = (ENTRY,),
                 created: float | None = None, version: int = 1) -> Release:
    state = PaasState(store)
    if not await state.exists(APP):
        await state.create_app(APP)
    release = Release(version, "sha256:img", {}, {}, {"web": "", "report": "echo report"},
                      "abc", created if created is not None else T0.timestamp() - 1,
                      cron=tuple(e.to_json() for e in entries))
    await state.put_release(APP, release)
    await state.set_current(APP, version)
    return release


async def eventually(check: Callable[[], object], timeout: float = 30.0) -> None:
    """Poll (in real time: the store answers from a thread) until ``check()`` holds; the
    bound is generous because the machine may be loaded."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def step(clock: FakeClock, runners: list[CronRunner], seconds: float,
               by: float = 1.0) -> None:
    """Move time on ``by`` seconds at a time, letting each leading runner finish its pass
    and its runs before the next step."""
    moved = 0.0
    while moved < seconds:
        await clock.advance(by)
        moved += by
        for r in runners:
            await eventually(lambda r=r: r.asleep_until > clock.now() or r.leading == 0)
            await eventually(lambda r=r: not r.running)


async def stopped(tasks: list[asyncio.Task[None]], runners: list[CronRunner]) -> None:
    """Cancelled engines have stopped, their runs ended and their resigns (shielded from
    the cancel) gone through, before the store closes."""
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await eventually(lambda: not any(r.running or r.leading for r in runners))
    await asyncio.sleep(0.05)


class Leading:
    """A runner's leader loop as a task, as the scheduler runs it."""

    def __init__(self, runner: CronRunner) -> None:
        self.runner = runner
        self.task: asyncio.Task[None] | None = None

    def start(self, leadership: Leadership) -> None:
        self.task = asyncio.create_task(self.runner.lead(leadership))

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


def runner(store: Store, clock: FakeClock, ran: Ran, machine: str, **kw: Any) -> CronRunner:
    return CronRunner(store, ran.executor(machine), machine, clock=clock, wall=wall_of(clock),
                      **kw)


async def history(store: Store) -> list[cron.RunRecord]:
    kv = await store.get(runs_key(APP, ENTRY.id))
    return cron.history_from_json(kv.value) if kv else []


async def test_each_slot_fires_once_and_its_run_is_recorded(store: Store,
                                                           clock: FakeClock) -> None:
    await deploy(store)
    ran = Ran()
    r1 = runner(store, clock, ran, "m1")
    lead = await Election(store, "m1", ttl=10_000, clock=clock).try_acquire()
    assert lead is not None
    loop = Leading(r1)
    loop.start(lead)
    try:
        await step(clock, [r1], 200)  # 11:59:59.5 -> 12:03:19.5
    finally:
        await loop.stop()
    assert ran.slots() == [minute(0), minute(1), minute(2), minute(3)]
    runs = await history(store)
    assert [(r.slot, r.exit_code, r.output, r.machine, r.trigger) for r in runs] == [
        (minute(i), 0, (f"tick {minute(i)}",), "m1", "schedule") for i in range(4)]
    # passes happen at the minute, not every interval only: each run started on time
    assert [round(r.started - (T0.timestamp() + 60 * i), 1) for i, r in enumerate(runs)] \
        == [0.5] * 4
    kv = await store.get(state_key(APP, ENTRY.id))
    assert kv is not None and cron.EntryState.from_json(kv.value).slot == minute(3)


async def test_a_crashed_leader_is_replaced_without_a_skip_or_a_double(
        store: Store, clock: FakeClock) -> None:
    """The leader's machine vanishes mid-minute (a partition: its lease expires); the next
    leader, through the scheduler's own election and hook, fires the next slot, once."""
    await deploy(store)
    ran = Ran()
    cut = {m: CuttableStore(store) for m in ("m1", "m2")}
    runners = {m: runner(cut[m], clock, ran, m) for m in ("m1", "m2")}
    engines = {m: SchedulerEngine(cut[m], m, clock=clock, ttl=3.0,
                                  leader_tasks=(runners[m].lead,)) for m in ("m1", "m2")}
    tasks = [asyncio.create_task(engines["m1"].run())]
    try:
        await eventually(lambda: engines["m1"].is_leader)
        tasks.append(asyncio.create_task(engines["m2"].run()))
        await step(clock, list(runners.values()), 90)  # to 12:01:29.5
        assert ran.runs == [("m1", minute(0)), ("m1", minute(1))]
        cut["m1"].cut = True  # mid-minute, the leader is gone
        # m2 takes over once m1's lease expires (a few seconds); fake time waits for the
        # election's store calls, which answer in real time
        for _ in range(40):
            await step(clock, list(runners.values()), 0.5, by=0.5)
            with contextlib.suppress(AssertionError):
                await eventually(lambda: runners["m2"].leading > 0, timeout=0.5)
                break
        assert runners["m2"].leading and clock.now() - START < 110  # before 12:01:50
        await step(clock, list(runners.values()), START + 240 - clock.now())
        assert engines["m2"].is_leader and not engines["m1"].is_leader
    finally:
        await stopped(tasks, list(runners.values()))
    assert ran.slots() == [minute(i) for i in range(4)]
    assert [m for m, _ in ran.runs] == ["m1", "m1", "m2", "m2"]


async def test_a_graceful_hand_over_neither_skips_nor_doubles(store: Store,
                                                              clock: FakeClock) -> None:
    await deploy(store)
    ran = Ran()
    runners = {m: runner(store, clock, ran, m) for m in ("m1", "m2")}
    engines = {m: SchedulerEngine(store, m, clock=clock, ttl=3.0,
                                  leader_tasks=(runners[m].lead,)) for m in ("m1", "m2")}
    first = asyncio.create_task(engines["m1"].run())
    second: asyncio.Task[None] | None = None
    try:
        await eventually(lambda: engines["m1"].is_leader)
        second = asyncio.create_task(engines["m2"].run())
        await step(clock, list(runners.values()), 60.6)  # 12:01:00.1: m1 fired 12:01
        first.cancel()  # the daemon stops: it resigns, m2 takes over at once
        with contextlib.suppress(asyncio.CancelledError):
            await first
        await eventually(lambda: engines["m2"].is_leader)
        await step(clock, list(runners.values()), 70)  # to 12:02:10
    finally:
        await stopped([t for t in (first, second) if t], list(runners.values()))
    assert ran.runs == [("m1", minute(0)), ("m1", minute(1)), ("m2", minute(2))]


async def test_a_deposed_leader_that_still_runs_fires_nothing(store: Store,
                                                             clock: FakeClock) -> None:
    """m1 lost its lease but has not noticed yet (its keepalive answer is late): both loops
    run at the same slots; only the holder of the leader key can record a slot."""
    await deploy(store)
    ran = Ran()
    r1, r2 = runner(store, clock, ran, "m1"), runner(store, clock, ran, "m2")
    l1 = await Election(store, "m1", ttl=10_000, clock=clock).try_acquire()
    assert l1 is not None
    loops = [Leading(r1), Leading(r2)]
    loops[0].start(l1)
    try:
        await step(clock, [r1], 30)  # 12:00:29.5
        await store.revoke(l1.lease)  # deposed, as an expired lease would
        l2 = await Election(store, "m2", ttl=10_000, clock=clock).try_acquire()
        assert l2 is not None
        await step(clock, [r1], 50)  # 12:01 comes while m2's loop is still starting
        assert ran.runs == [("m1", minute(0))]
        loops[1].start(l2)  # 12:01:19.5: late, within grace
        await step(clock, [r1, r2], 60)
    finally:
        for loop in loops:
            await loop.stop()
    assert ran.runs == [("m1", minute(0)), ("m2", minute(1)), ("m2", minute(2))]


async def test_a_slot_later_than_grace_is_skipped_and_logged(
        store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    await deploy(store)
    ran = Ran()
    hourly = cron.CronEntry("@hourly", "echo hourly")
    await deploy(store, (hourly,), version=2)
    await store.put(state_key(APP, hourly.id),
                    cron.EntryState(slot=cron.iso(T0 - dt.timedelta(hours=1))).to_json())
    await clock.advance(45)  # nobody led at 12:00 (an outage); a leader comes at 12:00:44.5
    r1 = runner(store, clock, ran, "m1", grace=30.0)
    lead = await Election(store, "m1", ttl=10_000, clock=clock).try_acquire()
    assert lead is not None
    loop = Leading(r1)
    caplog.set_level(logging.WARNING, "shipmate.paas.cron_runner")
    loop.start(lead)
    try:
        await eventually(lambda: r1.passes >= 1)
        await step(clock, [r1], 10)
    finally:
        await loop.stop()
    assert ran.runs == []
    assert "run of 2024-05-01T12:00:00Z skipped, 44.5s late (cron_grace 30s)" in caplog.text
    kv = await store.get(state_key(APP, hourly.id))
    assert kv is not None and cron.EntryState.from_json(kv.value).slot == minute(0)


async def test_suspend_stops_runs_and_resume_starts_again_at_the_next_slot(
        store: Store, clock: FakeClock) -> None:
    await deploy(store)
    ran = Ran()
    r1 = runner(store, clock, ran, "m1")
    tasks = CronTasks(store, r1)
    lead = await Election(store, "m1", ttl=10_000, clock=clock).try_acquire()
    assert lead is not None
    loop = Leading(r1)
    loop.start(lead)
    try:
        await step(clock, [r1], 30)  # 12:00:29.5, 12:00 ran
        assert (await tasks.set_suspended(APP, ENTRY.id, True))["changed"]
        assert not (await tasks.set_suspended(APP, ENTRY.id, True))["changed"]
        (row,) = await tasks.list(APP)
        assert row["suspended"] and row["next_run"] == ""
        await step(clock, [r1], 120)  # 12:02:29.5: 12:01 and 12:02 did not run
        assert ran.slots() == [minute(0)]
        await tasks.set_suspended(APP, ENTRY.id, False)
        await step(clock, [r1], 20)  # 12:02 is not run late after the resume
        assert ran.slots() == [minute(0)]
        await step(clock, [r1], 50)  # 12:03:39.5
    finally:
        await loop.stop()
    assert ran.slots() == [minute(0), minute(3)]
    (row,) = await tasks.list(APP)
    assert not row["suspended"] and row["next_run"] == minute(4)


async def test_maintenance_entries_do_not_run_and_cannot_be_resumed(
        store: Store, clock: FakeClock) -> None:
    paused = cron.CronEntry("* * * * *", "echo paused", maintenance=True)
    await deploy(store, (paused,))
    ran = Ran()
    r1 = runner(store, clock, ran, "m1")
    lead = await Election(store, "m1", ttl=10_000, clock=clock).try_acquire()
    assert lead is not None
    loop = Leading(r1)
    loop.start(lead)
    try:
        await step(clock, [r1], 70)
    finally:
        await loop.stop()
    assert ran.runs == []
    with pytest.raises(ValidationError, match=r"is in maintenance in app\.json"):
        await CronTasks(store, r1).set_suspended(APP, paused.id, False)


async def test_cron_run_runs_now_and_cron_list_shows_the_result(store: Store,
                                                               clock: FakeClock) -> None:
    await deploy(store)
    ran = Ran()
    tasks = CronTasks(store, runner(store, clock, ran, "m1"))
    lines = [line async for line in await tasks.run_now(APP, ENTRY.id)]
    assert lines == [f"-----> Running cron task {ENTRY.id} of {APP}: {ENTRY.command}",
                     "tick ", "\0exit 0"]
    (row,) = await tasks.list(APP)
    assert (row["id"], row["schedule"], row["command"]) == (ENTRY.id, "* * * * *",
                                                            ENTRY.command)
    assert row["next_run"] == minute(0)
    last = row["last_run"]
    assert (last["trigger"], last["exit_code"], last["slot"], last["machine"]) == (
        "manual", 0, "", "m1")
    with pytest.raises(NotFoundError, match=f"No cron task abc for {APP}"):
        await tasks.run_now(APP, "abc")
    with pytest.raises(ValidationError, match="Invalid cron id"):
        await tasks.run_now(APP, "../../x")


async def test_a_run_that_cannot_start_is_recorded_with_its_reason(store: Store,
                                                                   clock: FakeClock) -> None:
    await deploy(store)
    engine = FakeEngine()  # the image is not here, and there is no peer to ask

    async def one_off(*args: Any, **kw: Any) -> tuple[int, str]:
        raise AssertionError("must not run without the image")

    r1 = CronRunner(store, OneOffExecutor(one_off, engine), "m1", clock=clock,
                    wall=wall_of(clock))
    lines = [line async for line in await CronTasks(store, r1).run_now(APP, ENTRY.id)]
    assert lines[-2:] == [" !     the image of ticker v1 is not on this machine", "\0exit 1"]
    (run,) = await history(store)
    assert run.error == "the image of ticker v1 is not on this machine"
    assert run.summary().startswith("failed: ")


async def test_the_executor_fetches_a_missing_image_then_runs_through_sh(
        store: Store, clock: FakeClock) -> None:
    release = await deploy(store)
    engine = FakeEngine()
    calls: list[tuple[list[str], Mapping[str, str], Mapping[str, str]]] = []

    class Peers:
        async def fetch(self, ref: str, labels: Mapping[str, str],
                        progress: Callable[[str], None]) -> None:
            assert labels == {"shipmate.app": APP}
            engine.add_image(ref)

    async def one_off(app: str, rel: Release, argv: list[str], on_line: Any = None, *,
                      env: Mapping[str, str] | None = None,
                      labels: Mapping[str, str] | None = None) -> tuple[int, str]:
        assert await engine.image(rel.image) is not None
        calls.append((argv, env or {}, labels or {}))
        return 3, "out"

    ex = OneOffExecutor(one_off, engine, Peers())
    assert await ex.run(APP, release, "report", {"SHIPMATE_CRON_ID": "x1"}, None) == (3, "out")
    assert calls == [(["/bin/sh", "-c", "echo report"], {"SHIPMATE_CRON_ID": "x1"},
                      {"shipmate.cron": "x1"})]
    with pytest.raises(EngineError, match="no Docker engine"):
        await OneOffExecutor(one_off, None).run(APP, release, "x", {}, None)


class RacingStore(CuttableStore):
    """Runs ``race`` (once) right after a range read: a user's write that lands between
    the leader's read of an entry's record and its claim of the slot."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.race: Callable[[], Any] | None = None

    async def range(self, prefix: str) -> Any:
        out = await super().range(prefix)
        if self.race is not None:
            race, self.race = self.race, None
            await race()
        return out


async def test_a_suspend_racing_a_pass_wins_over_the_claim(store: Store,
                                                         clock: FakeClock) -> None:
    await deploy(store)
    ran = Ran()
    racing = RacingStore(store)
    r1 = runner(racing, clock, ran, "m1")
    tasks = CronTasks(store, r1)
    lead = await Election(store, "m1", ttl=10_000, clock=clock).try_acquire()
    assert lead is not None
    await clock.advance(1)  # 12:00:00.5: the 12:00 slot is due
    racing.race = lambda: tasks.set_suspended(APP, ENTRY.id, True)
    await r1.tick(lead)  # its claim compares the record it read: the suspend changed it
    await eventually(lambda: not r1.running)
    assert ran.runs == []
    (row,) = await tasks.list(APP)
    assert row["suspended"]
    await r1.tick(lead)  # the next pass reads the suspend
    assert ran.runs == [] and r1.fired == 0
