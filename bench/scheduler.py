#!/usr/bin/env python3
"""Scheduler benchmark: 2,000 units on 100 machines.

Agents are simulated in-process: each machine is registered directly in the store under its
own lease. The real SchedulerEngine (election, watch, fenced CAS writes) runs over the
embedded store (in memory by default, ``--sqlite PATH`` for a file, ``--etcd URL`` for etcd).
Prints: pure placement time, time from engine start to every unit placed, the spread of units
per machine, and the time to move the units of a machine that dies.

    .venv/bin/python bench/scheduler.py [--units 2000] [--machines 100]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from shipmate.scheduler.engine import SchedulerEngine
from shipmate.scheduler.model import Machine
from shipmate.scheduler.placement import plan
from shipmate.scheduler.registry import Registry
from shipmate.spec.units import parse_unit
from shipmate.store.base import Store

EXEC = "[Service]\nExecStart=/bin/sleep infinity\n"


def unit_texts(n: int) -> dict[str, str]:
    """A mix: plain units, conflict groups of 10, region-bound units, MachineOf followers."""
    texts: dict[str, str] = {}
    groups = n // 4 // 10
    for g in range(groups):
        for k in range(10):
            texts[f"grp{g}@{k}.service"] = EXEC + f"[X-Fleet]\nConflicts=grp{g}@*.service\n"
    for i in range(n * 15 // 100):
        region = "eu" if i % 2 else "us"
        texts[f"regional{i}.service"] = EXEC + f"[X-Fleet]\nMachineMetadata=region={region}\n"
    followers = n // 10
    plain = n - len(texts) - followers
    for i in range(plain):
        texts[f"plain{i}.service"] = EXEC
    for i in range(followers):
        texts[f"side{i}.service"] = EXEC + f"[X-Fleet]\nMachineOf=plain{i}.service\n"
    return texts


def machines(n: int) -> list[Machine]:
    return [Machine(f"m{i:03d}", f"127.0.1.{i % 250}",
                    (("region", "eu" if i % 2 else "us"),)) for i in range(n)]


def bench_pure(texts: dict[str, str], ms: list[Machine]) -> float:
    reqs = {name: parse_unit(name, text).requirements for name, text in texts.items()}
    start = time.perf_counter()
    result = plan(reqs, dict.fromkeys(reqs, "launched"), ms, {})
    elapsed = time.perf_counter() - start
    assert not result.waiting, result.waiting
    return elapsed


async def open_store(args: argparse.Namespace) -> Store:
    if args.etcd:
        from shipmate.store.etcd import EtcdStore

        return await EtcdStore.connect([args.etcd])
    from shipmate.store.sqlite import SqliteStore

    return await SqliteStore.open(args.sqlite or ":memory:")


async def fill(reg: Registry, store: Store, texts: dict[str, str],
               ms: list[Machine]) -> dict[str, int]:
    leases = {}
    for m in ms:
        leases[m.id] = await store.grant(3600)
        await reg.register_machine(m, leases[m.id])
    sem = asyncio.Semaphore(64)

    async def one(name: str, text: str) -> None:
        async with sem:
            await reg.submit(name, text)
            await reg.set_desired(name, "launched")

    await asyncio.gather(*(one(n, t) for n, t in texts.items()))
    return leases


async def wait_placed(reg: Registry, expected: int, avoid: str | None = None,
                      timeout: float = 120.0) -> dict[str, tuple[str, ...]]:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        where = {u: p.machines for u, p in (await reg.placements()).items()}
        if len(where) == expected and not any(avoid in ms for ms in where.values()):
            return where
        await asyncio.sleep(0.02)
    raise SystemExit(f"not converged in {timeout}s")


def spread(where: dict[str, tuple[str, ...]], ms: list[Machine]) -> str:
    counts = dict.fromkeys((m.id for m in ms), 0)
    for placed in where.values():
        for m in placed:
            counts[m] = counts.get(m, 0) + 1
    values = [c for m, c in counts.items() if m in {x.id for x in ms}]
    return (f"min {min(values)}  max {max(values)}  mean {statistics.mean(values):.1f}  "
            f"stdev {statistics.pstdev(values):.2f}")


async def bench_engine(args: argparse.Namespace, texts: dict[str, str],
                       ms: list[Machine]) -> None:
    store = await open_store(args)
    reg = Registry(store)
    t0 = time.perf_counter()
    leases = await fill(reg, store, texts, ms)
    print(f"submit+start {len(texts)} units, register {len(ms)} machines: "
          f"{time.perf_counter() - t0:.2f} s  (store: {store.name})")
    engines = [SchedulerEngine(store, m.id, ttl=3.0, reconcile_interval=5.0) for m in ms[:3]]
    start = time.perf_counter()
    tasks = [asyncio.create_task(e.run()) for e in engines]
    where = await wait_placed(reg, len(texts))
    converge = time.perf_counter() - start
    print(f"engine: time to converge (all {len(texts)} units placed): {converge:.2f} s")
    print(f"placement spread over {len(ms)} machines: {spread(where, ms)}")
    victim = ms[-1].id
    moved = sum(victim in p for p in where.values())
    start = time.perf_counter()
    await store.revoke(leases[victim])  # the machine dies: its heartbeat lease ends
    where = await wait_placed(reg, len(texts), avoid=victim)
    print(f"machine {victim} died: {moved} units placed elsewhere in "
          f"{time.perf_counter() - start:.2f} s")
    print(f"reconciles: {sum(e.reconciles for e in engines)}; "
          f"leaders: {sum(e.is_leader for e in engines)}")
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=2000)
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--sqlite", type=Path, help="SQLite file (default: in memory)")
    parser.add_argument("--etcd", help="etcd endpoint, e.g. http://127.0.0.1:2379")
    args = parser.parse_args()
    if args.sqlite is not None and args.sqlite.is_dir():
        args.sqlite = Path(tempfile.mkdtemp(dir=args.sqlite)) / "store.db"
    texts, ms = unit_texts(args.units), machines(args.machines)
    print(f"pure placement of {len(texts)} units on {len(ms)} machines: "
          f"{bench_pure(texts, ms) * 1000:.0f} ms")
    asyncio.run(bench_engine(args, texts, ms))


if __name__ == "__main__":
    sys.exit(main())
