#!/usr/bin/env python3
"""Store benchmark: puts, gets and watch delivery on both backends, side by side.

    .venv/bin/python bench/store.py [--n 2000] [--concurrency 16] [--backends sqlite,etcd]

A backend named ``NAME+metered`` is NAME wrapped in the MeteredStore the daemon opens (every
request timed into ``shipmate_store_request_duration_seconds``), to see what that costs:
``--backends sqlite,sqlite+metered,etcd,etcd+metered``.

SQLite runs on a file in a temporary directory; etcd is a real single member (Debian's etcd)
that the bench starts in a temporary directory on free loopback ports. Both are durable: every
acknowledged write is fsynced. Figures are requests per second over the whole batch and
per-request latency percentiles; for watches, the time from starting a put to the watcher
receiving its event.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from shipmate.store.base import Store  # noqa: E402

Result = dict[str, float]


def percentile(samples: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``samples``, nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def timed_batch(n: int, concurrency: int,
                      one: Callable[[int], Awaitable[object]]) -> tuple[float, list[float]]:
    """Run ``one(i)`` for i in range(n), ``concurrency`` at a time: (seconds, latencies)."""
    latencies: list[float] = []
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            t0 = time.perf_counter()
            await one(i)
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, latencies


def summarise(prefix: str, n: int, seconds: float, latencies: list[float]) -> Result:
    return {
        f"{prefix}/s": n / seconds,
        f"{prefix} p50 ms": percentile(latencies, 0.5) * 1000,
        f"{prefix} p99 ms": percentile(latencies, 0.99) * 1000,
    }


async def bench_kv(store: Store, n: int, concurrency: int) -> Result:
    """Puts of new keys, then gets of them."""
    value = b"x" * 100
    secs, lat = await timed_batch(n, concurrency, lambda i: store.put(f"/bench/kv/{i:08}", value))
    out = summarise("put", n, secs, lat)
    secs, lat = await timed_batch(n, concurrency, lambda i: store.get(f"/bench/kv/{i:08}"))
    out.update(summarise("get", n, secs, lat))
    return out


async def bench_watch(store: Store, n: int, concurrency: int) -> Result:
    """Puts under a watched prefix; delivery rate and put-to-event latency."""
    watch = await store.watch("/bench/watch/")
    sent: dict[str, float] = {}
    latencies: list[float] = []

    async def receive() -> None:
        async for event in watch:
            latencies.append(time.perf_counter() - sent[event.kv.key])
            if len(latencies) == n:
                return

    async def put(i: int) -> None:
        key = f"/bench/watch/{i:08}"
        sent[key] = time.perf_counter()
        await store.put(key, b"v")

    receiver = asyncio.create_task(receive())
    start = time.perf_counter()
    await timed_batch(n, concurrency, put)
    await asyncio.wait_for(receiver, 120)
    secs = time.perf_counter() - start
    await watch.close()
    return summarise("watch events", n, secs, latencies)


@contextlib.asynccontextmanager
async def open_backend(name: str) -> AsyncIterator[Store]:
    """A fresh, empty store of backend ``name`` in a temporary directory (``+metered``:
    wrapped as the daemon wraps it)."""
    if name.endswith("+metered"):
        from shipmate.store.metered import MeteredStore

        async with open_backend(name.removesuffix("+metered")) as inner:
            yield MeteredStore(inner)
        return
    if name == "sqlite":
        from shipmate.store.sqlite import SqliteStore

        with tempfile.TemporaryDirectory(prefix="shipmate-bench-") as tmp:
            store: Store = await SqliteStore.open(Path(tmp) / "store.db")
            try:
                yield store
            finally:
                await store.close()
        return
    from tests.conftest import EtcdServer  # the test suite's launcher: temp dir, free ports

    from shipmate.store.etcd import EtcdStore

    server = EtcdServer(name="bench")
    server.start()
    try:
        store = await EtcdStore.connect([server.endpoint], timeout=30.0)
        try:
            yield store
        finally:
            await store.close()
    finally:
        server.cleanup()


async def run(backends: list[str], n: int, concurrency: int) -> dict[str, Result]:
    results: dict[str, Result] = {}
    for name in backends:
        try:
            async with open_backend(name) as store:
                res = await bench_kv(store, n, concurrency)
                res.update(await bench_watch(store, n, concurrency))
        except ImportError as exc:  # a backend not written yet
            print(f"skipping {name}: {exc}", file=sys.stderr)
            continue
        results[name] = res
    return results


def table(results: dict[str, Result]) -> str:
    names = list(results)
    rows = list(next(iter(results.values()))) if results else []
    width = max([len(r) for r in rows] + [10])
    lines = [f"{'':<{width}}  " + "  ".join(f"{n:>12}" for n in names)]
    for row in rows:
        cells = "  ".join(f"{results[n][row]:>12,.1f}" for n in names)
        lines.append(f"{row:<{width}}  {cells}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="operations per measurement")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--backends", default="sqlite,etcd", help="comma-separated")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    results = asyncio.run(run(backends, args.n, args.concurrency))
    print(f"store benchmark: n={args.n} concurrency={args.concurrency}")
    print(table(results))


if __name__ == "__main__":
    main()
