#!/usr/bin/env python3
"""Warm large-file throughput of Shipmate's cache at several send buffers, side by side with
apt-cacher-ng, on the same files.

    .venv/bin/python bench/sndbuf.py [--sizes 0,131072,262144,524288,1048576,2097152]
                                     [--clients 1,10,50] [--duration 3] [--repeat 4]
                                     [--bridge]

Each size is a Shipmate of its own, with that size as both ``cache_sndbuf`` and
``cache_local_sndbuf``, so every connection gets it wherever the client is (0: the kernel's
autotuning; Linux keeps twice the size asked for, up to net.core.wmem_max). In every round
each measurement (wrk, and bench/bulkget.py with 1 MiB reads, at each client count) runs on
every server back to back, the order turning by one place from round to round. ``--bridge``
adds bulkget run in a container, reaching the caches over the Docker bridge as builds do
(it starts dockerd and builds the base images when needed). Printed: each server's median
MB/s and its median round ratio to apt-cacher-ng's, with their range. This is how the
defaults of the two settings were chosen (docs/cache.md); it judges nothing and always
exits 0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bulkget  # bench/ is not a package
import cache
import judge

Measure = tuple[str, int]  # (client, clients)
Runs = dict[tuple[str, Measure], list[float]]  # (server, measure) -> MB/s per round

CONTAINER = "1 MiB reads, container"
PYTHON_IMAGE = "shipmate/python:3.11"  # built by ``shipmate images:bootstrap``; has python3


def measure(server: cache.Server, big: list[str], client: str, clients: int,
            duration: float) -> float:
    urls = [server.url(p) for p in big]
    if client == "wrk":
        return cache.wrk(urls, clients, duration)[1]
    if client == CONTAINER:
        return in_container(urls, clients, duration)
    return bulkget.load(urls, clients, duration)["mb_per_s"]


def in_container(urls: list[str], clients: int, duration: float) -> float:
    """MB/s of bench/bulkget.py run in a container, reaching the cache over the Docker
    bridge (its gateway) as builds do."""
    gw = cache.gateway()
    bridged = [u.replace("//127.0.0.1:", f"//{gw}:", 1) for u in urls]
    out = subprocess.run(
        ["docker", "run", "--rm", "-v", f"{Path(__file__).resolve().parent}:/bench:ro",
         PYTHON_IMAGE, "python3", "/bench/bulkget.py", "--clients", str(clients),
         "--duration", str(duration), *bridged],
        capture_output=True, text=True, check=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["mb_per_s"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="0,131072,262144,524288,1048576,2097152",
                    help="send buffers to compare, bytes (0: autotuning)")
    ap.add_argument("--clients", default="1,10,50", help="concurrent clients")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per load run")
    ap.add_argument("--repeat", type=int, default=4, help="rounds (median)")
    ap.add_argument("--bridge", action="store_true",
                    help="also read 1 MiB at a time from a container, over the Docker bridge")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    clients = ("wrk", "1 MiB reads", CONTAINER) if args.bridge else ("wrk", "1 MiB reads")
    measures: list[Measure] = [(client, int(n)) for n in args.clients.split(",")
                               for client in clients]
    cache.ensure_tools(apt=args.bridge)
    tmp = Path(tempfile.mkdtemp(prefix="bench-sndbuf-"))
    servers: list[cache.Server] = []
    runs: Runs = {}
    try:  # one at a time: a failed start still stops the others
        for size in sizes:
            servers.append(cache.start_shipmate(
                tmp, cache.MIRROR, name=f"shipmate, sndbuf {size}",
                settings={"SHIPMATE_CACHE_SNDBUF": str(size),
                          "SHIPMATE_CACHE_LOCAL_SNDBUF": str(size)}))
        servers.append(cache.start_acng(tmp, cache.MIRROR + "/"))
        big, _ = cache.pick_files()
        for server in servers:
            cache.warm(server, big)
        for r, order in enumerate(judge.rotations(len(servers), args.repeat)):
            for m in measures:
                for i in order:
                    runs.setdefault((servers[i].name, m), []).append(
                        measure(servers[i], big, *m, args.duration))
            print(f"round {r + 1}/{args.repeat} done", flush=True)
    finally:
        for server in servers:
            server.stop()
    print(f"\nlarge .debs: {len(big)}, {args.duration:g} s per run, medians of {args.repeat}\n")
    cache.table(["measure", "server", "MB/s", "(range)", "/ apt-cacher-ng", "(rounds)"],
                rows(runs, [server.name for server in servers], measures))
    return 0


def rows(runs: Runs, names: list[str], measures: list[Measure]) -> list[list[str]]:
    """Per measure and server: median MB/s and the median round ratio to the last server's
    (apt-cacher-ng), each with its range."""
    out = []
    for m in measures:
        theirs = runs[(names[-1], m)]
        for name in names:
            ours = runs[(name, m)]
            ratios = judge.ratios(ours, theirs)
            out.append([f"{m[0]}, {m[1]} clients", name, f"{statistics.median(ours):.0f}",
                        judge.spread(ours, 0), f"{statistics.median(ratios):.2f}x",
                        judge.spread(ratios)])
    return out


if __name__ == "__main__":
    sys.exit(main())
