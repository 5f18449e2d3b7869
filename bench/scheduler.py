#!/usr/bin/env python3
"""Scheduler benchmark at scale, with resource reservations on.

Agents are simulated in-process: each machine is registered directly in the store under its
own lease, reporting its CPUs and memory (a quarter of them 4 CPUs / 8 GiB, the rest 8 CPUs /
16 GiB). Units reserve memory and CPU (``[X-Fleet] ReserveMemory=/ReserveCPU=``), and one
reserves more memory than any machine has: it must stay unplaced, with its reason. The real
SchedulerEngine (election, watch, fenced CAS writes; three candidates) runs over the SQLite
store on a file (as the daemon runs it) and over the in-memory store. Prints, per store:

- the time from engine start to every unit placed (goal < 3 s at 1000 machines / 10000 units);
- the time to re-place the units of a machine that dies (goal < 0.5 s at that size);
- placements per second, start to converged (goal >= 5,000/s at 5000 / 100000);

each with PASS/FAIL against the goal when the run has the goal's size. ``--etcd URL`` runs
over etcd instead.

    .venv/bin/python bench/scheduler.py --machines 1000 --units 10000
    .venv/bin/python bench/scheduler.py --machines 5000 --units 100000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from shipmate.scheduler.engine import SchedulerEngine
from shipmate.scheduler.model import Machine, UnitRecord, dumps
from shipmate.scheduler.placement import plan
from shipmate.scheduler.registry import (
    PLACEMENTS,
    Registry,
    desired_key,
    machine_key,
    unit_key,
)
from shipmate.spec.units import parse_unit
from shipmate.store.base import Op, Store, Watch

EXEC = "[Service]\nExecStart=/bin/sleep infinity\n"
HUGE = "huge.service"  # reserves more memory than any machine has
GiB = 2**30
#: (machines, units) -> (converge s, re-place s, placements/s) goals; None: no goal there.
GOALS: dict[tuple[int, int], tuple[float | None, float | None, float | None]] = {
    (1000, 10000): (3.0, 0.5, None),
    (5000, 100000): (None, None, 5000.0),
}


def _reserve(i: int) -> str:
    return (f"ReserveMemory={(128, 256, 512)[i % 3]}m\n"
            f"ReserveCPU={(0.1, 0.25, 0.5)[(i // 3) % 3]}\n")


def unit_texts(n: int) -> dict[str, str]:
    """A mix: conflict groups of 10, region-bound units, plain units, MachineOf followers
    (sidecars reserving nothing: one that did could find its peer's machine full, and wait),
    and one unit too big for any machine."""
    texts: dict[str, str] = {}
    groups = n // 4 // 10
    for g in range(groups):
        for k in range(10):
            texts[f"grp{g}@{k}.service"] = (EXEC + f"[X-Fleet]\nConflicts=grp{g}@*.service\n"
                                            + _reserve(g + k))
    for i in range(n * 15 // 100):
        region = "eu" if i % 2 else "us"
        texts[f"regional{i}.service"] = (EXEC + f"[X-Fleet]\nMachineMetadata=region={region}\n"
                                         + _reserve(i))
    followers = n // 10
    plain = n - len(texts) - followers - 1
    for i in range(plain):
        texts[f"plain{i}.service"] = EXEC + "[X-Fleet]\n" + _reserve(i)
    for i in range(followers):
        texts[f"side{i}.service"] = EXEC + f"[X-Fleet]\nMachineOf=plain{i}.service\n"
    texts[HUGE] = EXEC + "[X-Fleet]\nReserveMemory=64g\n"
    return texts


def machines(n: int) -> list[Machine]:
    """Machines in two regions; every fourth is half the size."""
    return [Machine(f"m{i:04d}", f"127.0.{i // 250}.{i % 250}",
                    (("region", "eu" if i % 2 else "us"),),
                    cpus=4.0 if i % 4 == 0 else 8.0, memory=8 * GiB if i % 4 == 0 else 16 * GiB)
            for i in range(n)]


def records(texts: dict[str, str]) -> dict[str, UnitRecord]:
    """Parsed unit records (one parse per distinct text: these texts use no specifiers)."""
    parsed: dict[str, UnitRecord] = {}
    out = {}
    for name, text in texts.items():
        if text not in parsed:
            unit = parse_unit(name, text)
            parsed[text] = UnitRecord(name, text, unit.hash, unit.requirements)
        out[name] = dataclasses.replace(parsed[text], name=name)
    return out


def bench_pure(recs: dict[str, UnitRecord], ms: list[Machine]) -> float:
    reqs = {name: r.requirements for name, r in recs.items()}
    start = time.perf_counter()
    result = plan(reqs, dict.fromkeys(reqs, "launched"), ms, {})
    elapsed = time.perf_counter() - start
    assert list(result.waiting) == [HUGE], list(result.waiting)[:5]
    return elapsed


async def open_store(kind: str, args: argparse.Namespace) -> Store:
    if kind == "etcd":
        from shipmate.store.etcd import EtcdStore

        return await EtcdStore.connect([args.etcd])
    from shipmate.store.sqlite import SqliteStore

    if kind == "memory":
        return await SqliteStore.open(":memory:")
    return await SqliteStore.open(Path(tempfile.mkdtemp(dir=args.dir)) / "store.db")


async def fill(store: Store, recs: dict[str, UnitRecord], ms: list[Machine]) -> dict[str, int]:
    """Register the machines (a lease each) and submit and start every unit, in batched
    transactions (what thousands of agents and users would have done over time)."""
    leases = {m.id: await store.grant(3600) for m in ms}
    per = max(1, store.max_txn_ops // 2)
    for i in range(0, len(ms), per):
        await store.txn([], [Op.put(machine_key(m.id), dumps(m.to_json()), leases[m.id])
                             for m in ms[i:i + per]])
    names = sorted(recs)
    for i in range(0, len(names), per):
        ops = []
        for name in names[i:i + per]:
            ops.append(Op.put(unit_key(name), dumps(recs[name].to_json())))
            ops.append(Op.put(desired_key(name), dumps({"state": "launched"})))
        await store.txn([], ops)
    return leases


class Watcher:
    """Follows the placements through a watch, as an agent would see them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.where: dict[str, tuple[str, ...]] = {}
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        watch = await self.store.watch(PLACEMENTS, start_revision=await self.store.revision())
        self.task = asyncio.create_task(self._follow(watch))

    async def _follow(self, watch: Watch) -> None:
        async with watch:
            async for event in watch:
                unit = event.kv.key[len(PLACEMENTS):]
                if event.type == "put":
                    self.where[unit] = tuple(json.loads(event.kv.value)["machines"])
                else:
                    self.where.pop(unit, None)
                self.changed.set()

    async def until(self, done: Callable[[dict[str, tuple[str, ...]]], bool],
                    timeout: float) -> float:
        """Wait until ``done(where)`` holds; returns when it first did (perf_counter)."""
        deadline = time.perf_counter() + timeout
        while not done(self.where):
            self.changed.clear()
            left = deadline - time.perf_counter()
            if left <= 0:
                raise SystemExit(f"not converged in {timeout:.0f} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return time.perf_counter()

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


@dataclasses.dataclass
class Figures:
    converge: float
    replace: float
    moved: int
    rate: float


async def bench_engine(kind: str, args: argparse.Namespace, recs: dict[str, UnitRecord],
                       ms: list[Machine]) -> Figures:
    store = await open_store(kind, args)
    reg = Registry(store)
    t0 = time.perf_counter()
    leases = await fill(store, recs, ms)
    print(f"  fill: {len(ms)} machines, {len(recs)} units submitted and started in "
          f"{time.perf_counter() - t0:.1f} s")
    watcher = Watcher(store)
    await watcher.start()
    expected = len(recs) - 1  # all but HUGE
    engines = [SchedulerEngine(store, m.id, ttl=10.0, reconcile_interval=args.interval)
               for m in ms[:3]]
    start = time.perf_counter()
    tasks = [asyncio.create_task(e.run()) for e in engines]
    done = await watcher.until(lambda w: len(w) >= expected, args.timeout)
    converge = done - start
    print(f"  converged: {expected} units placed {converge:.2f} s after engine start "
          f"({expected / converge:,.0f} placements/s)")
    print(f"  spread over {len(ms)} machines: {spread(watcher.where, ms)}")
    print(f"  {HUGE}: {(await reg.waiting()).get(HUGE, '(no reason written)')}")
    leader = next(e for e in engines if e.is_leader)
    while not (leader.idle and leader.reconciles):  # the first pass is over: a settled cluster
        await asyncio.sleep(0.01)
    victim = ms[-1].id
    doomed = {u for u, p in watcher.where.items() if victim in p}
    start = time.perf_counter()
    await store.revoke(leases[victim])  # the machine dies: its heartbeat lease ends
    done = await watcher.until(lambda w: all(w.get(u) and victim not in w[u] for u in doomed),
                               args.timeout)
    replace = done - start
    print(f"  machine {victim} died: its {len(doomed)} units placed elsewhere in "
          f"{replace * 1000:.0f} ms")
    print(f"  passes: {sum(e.reconciles for e in engines)}; "
          f"leaders: {sum(e.is_leader for e in engines)}")
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await watcher.close()
    await store.close()
    return Figures(converge, replace, len(doomed), expected / converge)


def spread(where: dict[str, tuple[str, ...]], ms: list[Machine]) -> str:
    counts = dict.fromkeys((m.id for m in ms), 0)
    for placed in where.values():
        for m in placed:
            counts[m] = counts.get(m, 0) + 1
    values = list(counts.values())
    return (f"min {min(values)}  max {max(values)}  mean {statistics.mean(values):.1f}  "
            f"stdev {statistics.pstdev(values):.2f}")


def verdicts(size: tuple[int, int], figures: dict[str, Figures]) -> list[str]:
    """PASS/FAIL lines for the goals set at ``size``."""
    goal = GOALS.get(size)
    if goal is None:
        sizes = ", ".join(f"{m}/{u}" for m, u in GOALS)
        return [f"no goals at {size[0]}/{size[1]} (goals are set at {sizes})"]
    lines = []
    for kind, f in figures.items():
        checks = [("converge", f.converge, goal[0], "<", "s"),
                  ("re-place dead machine", f.replace, goal[1], "<", "s"),
                  ("placements per second", f.rate, goal[2], ">=", "/s")]
        for what, value, target, op, unit in checks:
            if target is None:
                continue
            ok = value < target if op == "<" else value >= target
            lines.append(f"{'PASS' if ok else 'FAIL'}  {kind:7} {what}: {value:,.2f}{unit} "
                         f"(goal {op} {target:,g}{unit})")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=1000)
    parser.add_argument("--units", type=int, default=10000)
    parser.add_argument("--stores", default="sqlite,memory",
                        help="comma-separated: sqlite (a file), memory, etcd")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where the SQLite file goes (default: a temporary directory)")
    parser.add_argument("--etcd", help="etcd endpoint, e.g. http://127.0.0.1:2379")
    parser.add_argument("--interval", type=float, default=5.0,
                        help="the engines' reconcile_interval (the daemon's default: 5 s)")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    texts, ms = unit_texts(args.units), machines(args.machines)
    recs = records(texts)
    pure = bench_pure(recs, ms)
    print(f"pure placement of {len(recs)} units on {len(ms)} machines: {pure * 1000:.0f} ms "
          f"({len(recs) / pure:,.0f} placements/s)")
    figures = {}
    for kind in args.stores.split(","):
        print(f"store {kind}:")
        figures[kind] = asyncio.run(bench_engine(kind, args, recs, ms))
    print("\n".join(verdicts((args.machines, args.units), figures)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
