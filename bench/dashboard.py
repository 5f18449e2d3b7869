"""Dashboard page-time benchmark: the overview and an app page with a full store.

Fills a file-backed SQLite store (the daemon's default backend) with 100 apps (three
releases each, config, formation, domains), 1,000 PaaS units (10 per app: unit record,
desired state, placement, state report on one of 5 machines, and an endpoint for web
units), 10,000 audit events spread over the apps and a full 15 minutes of request-graph
samples for every app (the metrics they sample counting requests between samples, as the
router would), then serves the dashboard (the real aiohttp application, with its session
guard) on a unix socket, logs in as an admin and times ``GET /``, ``GET /apps/<app>`` and
that app's graphs fragment round after round (each measure alternating, after a warm-up).
Prints each page's median, min and max in milliseconds and PASS or FAIL against the goal
(under 100 ms each); exits 1 on a FAIL.

    .venv/bin/python bench/dashboard.py [--runs 30] [--goal-ms 100]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from shipmate import config, metrics
from shipmate.agent.endpoints import instance_name
from shipmate.paas.model import Release
from shipmate.paas.service import Paas
from shipmate.router import keys as route_keys
from shipmate.scheduler import registry as reg
from shipmate.scheduler.model import Machine, Placement, UnitState, dumps
from shipmate.store.base import Op, Store
from shipmate.store.sqlite import SqliteStore
from shipmate.web.dashboard.server import Dashboard, make_app
from shipmate.web.eventlog import EventLog
from shipmate.web.events import SEQ_KEY, AuditEvent, event_key
from shipmate.web.httpstats import INTERVAL, KEEP, Sampler
from shipmate.web.users import Users

APPS, UNITS_PER_APP, MACHINES, EVENTS = 100, 10, 5, 10_000
GOAL_MS = 100.0
PASSWORD = "bench password 1234"
UNIT_TEXT = "[Container]\nImage=sha256:0\n\n[Service]\nRestart=always\n"
VERBS = ("push", "config:set", "ps:scale", "ps:restart", "apps:lock", "domains:add")


def app_name(i: int) -> str:
    return f"app-{i:03d}"


async def _apps(store: Store, paas: Paas) -> None:
    now = time.time()
    await store.put(route_keys.GLOBAL_DOMAIN_KEY, route_keys.encode_global_domain("bench.test"))
    for i in range(APPS):
        app = app_name(i)
        await paas.state.create_app(app)
        env = {f"KEY_{k}": "x" * 40 for k in range(5)}
        await paas.state.update_config(app, env)
        for v in (1, 2, 3):
            await paas.state.put_release(app, Release(
                v, "sha256:" + "0" * 64, env, {}, {"web": "", "worker": "run"},
                f"{v:040x}", now - 3600 * (4 - v), f"Deploy {v:07x}"))
        await paas.state.set_current(app, 3)
        await paas.state.set_formation(app, {"web": 6, "worker": 4})
        await store.put(route_keys.domains_key(app), route_keys.encode_domains([]))


async def _fleet(store: Store) -> None:
    lease = await store.grant(3600)
    registry = reg.Registry(store)
    machines = [f"machine-{m}" for m in range(MACHINES)]
    for m, mid in enumerate(machines):
        await registry.register_machine(Machine(mid, f"10.0.0.{m + 1}"), lease)
    n = 0
    for i in range(APPS):
        app = app_name(i)
        ops = []
        for k in range(UNITS_PER_APP):
            proc, num = ("web", k + 1) if k < 6 else ("worker", k - 5)
            unit = f"{app}_{proc}.{num}_v3-abcd.container"
            mid = machines[n % MACHINES]
            n += 1
            ops += [Op.put(reg.unit_key(unit), dumps({"name": unit, "text": UNIT_TEXT,
                                                      "hash": f"{n:040x}"})),
                    Op.put(reg.desired_key(unit), dumps({"state": "launched"})),
                    Op.put(reg.placement_key(unit), dumps(Placement(unit, (mid,)).to_json())),
                    Op.put(reg.state_key(unit, mid), dumps(UnitState(
                        unit, mid, "loaded", "active", "running", f"{n:040x}").to_json()),
                        lease=lease)]
            if proc == "web":
                ops.append(Op.put(route_keys.endpoint_key(app, "web", instance_name(unit, mid)),
                                  route_keys.encode_endpoint("10.0.0.1", 30000 + n,
                                                             release="v3-abcd", machine=mid),
                                  lease=lease))
        await store.txn([], ops)


async def _events(store: Store) -> None:
    now = time.time() - EVENTS
    for start in range(1, EVENTS + 1, 500):
        ops = [Op.put(event_key(seq), AuditEvent(
            now + seq, f"user{seq % 7}", "ssh", VERBS[seq % len(VERBS)],
            app_name(seq % APPS), f"summary {seq}", seq=seq).encode())
            for seq in range(start, min(start + 500, EVENTS + 1))]
        await store.txn([], ops)
    await store.put(SEQ_KEY, str(EVENTS))


async def fill(store: Store, paas: Paas) -> None:
    """The store as 100 apps, 1,000 units and 10,000 events leave it."""
    await _apps(store, paas)
    await _fleet(store)
    await _events(store)


def sampled(now: float) -> tuple[Sampler, float]:
    """A sampler that has sampled :data:`KEEP` times, every app having had requests (some
    5xx, times spread over the buckets) between each two samples; and the seconds its
    samples took."""
    requests = metrics.Counter(metrics.HTTP_REQUESTS.name, "", ("app", "class"))
    seconds = metrics.Histogram(metrics.HTTP_REQUEST_SECONDS.name, "", ("app",),
                                metrics.HTTP_REQUEST_SECONDS.buckets)
    sampler, took = Sampler(requests, seconds), 0.0
    for k in range(KEEP):
        for i in range(APPS):
            app = app_name(i)
            requests.inc(20 + (k * 7 + i) % 30, app=app, **{"class": "2xx"})
            requests.inc(k % 3, app=app, **{"class": "5xx"})
            for j in range(8):
                seconds.observe(0.003 * (1 + (j * k + i) % 40), app=app)
        began = time.perf_counter()
        sampler.sample(now - (KEEP - 1 - k) * INTERVAL)
        took += time.perf_counter() - began
    return sampler, took


async def log_in(client: aiohttp.ClientSession) -> None:
    async with client.get("/login") as resp:
        found = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
    assert found
    async with client.post("/login", data={"user": "admin", "password": PASSWORD,
                                           "csrf": found.group(1)},
                           allow_redirects=False) as resp:
        assert resp.status == 303, resp.status


async def timed(client: aiohttp.ClientSession, path: str) -> float:
    began = time.perf_counter()
    async with client.get(path, allow_redirects=False) as resp:
        body = await resp.read()
        assert resp.status == 200 and len(body) > 1000, (path, resp.status)
        assert b"no data" not in body, path  # the app page draws its graphs
    return (time.perf_counter() - began) * 1000


async def run(runs: int, goal: float) -> int:
    with tempfile.TemporaryDirectory(prefix="shipmate-bench-dash-") as tmp:
        store = await SqliteStore.open(Path(tmp) / "store.db")
        try:
            paas = Paas(store, None, config.load({}, state_dir=Path(tmp)))
            began = time.perf_counter()
            await fill(store, paas)
            users = Users(store)
            await users.add("admin", PASSWORD, admin=True)
            print(f"-----> Store filled: {APPS} apps, {APPS * UNITS_PER_APP} units, "
                  f"{EVENTS} events in {time.perf_counter() - began:.1f} s")
            sampler, took = sampled(time.time())
            print(f"-----> {KEEP} request-graph samples of {APPS} apps taken, "
                  f"{took * 1000 / KEEP:.2f} ms a sample")
            dash = Dashboard(store, paas, users, EventLog(store), sampler=sampler)
            recent = asyncio.create_task(dash.recent.run())  # as the daemon's listener does
            await asyncio.wait_for(dash.recent.ready.wait(), 60)
            runner = web.AppRunner(make_app(dash))
            await runner.setup()
            sock = str(Path(tmp) / "dash.sock")
            await web.UnixSite(runner, sock).start()
            try:
                return await _measure(sock, runs, goal)
            finally:
                recent.cancel()
                await runner.cleanup()
        finally:
            await store.close()


async def _measure(sock: str, runs: int, goal: float) -> int:
    pages = {"overview": "/", "app page": f"/apps/{app_name(42)}",
             "graphs": f"/fragments/apps/{app_name(42)}/graphs"}
    times: dict[str, list[float]] = {name: [] for name in pages}
    async with aiohttp.ClientSession("http://bench.test",
                                     connector=aiohttp.UnixConnector(path=sock)) as client:
        await log_in(client)
        for path in pages.values():  # warm-up: templates compiled, caches filled
            await timed(client, path)
        for _ in range(runs):
            for name, path in pages.items():
                times[name].append(await timed(client, path))
    failed = 0
    print(f"=====> Page times over {runs} runs (goal: under {goal:.0f} ms)")
    for name, found in times.items():
        median = statistics.median(found)
        verdict = "PASS" if median < goal else "FAIL"
        failed += verdict == "FAIL"
        print(f"       {name:<10} median {median:6.1f} ms  min {min(found):6.1f}  "
              f"max {max(found):6.1f}  {verdict}")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--goal-ms", type=float, default=GOAL_MS)
    args = parser.parse_args()
    return asyncio.run(run(args.runs, args.goal_ms))


if __name__ == "__main__":
    sys.exit(main())
