"""Postgres as a Shipmate service against the same Postgres run straight on the host.

1. Seconds from ``postgres:create`` to accepting connections (the command returns when the
   unit's health check passes; the image is built first if missing, timed apart).
2. pgbench TPS (TPC-B-like, ``-c CLIENTS -j 2 -T SECONDS`` on a ``-s SCALE`` database)
   against the service, from a client container on the service's private network, and
   against Debian's postgresql-15 on this host (``initdb`` defaults, as the service's,
   in a temporary directory, on a free loopback port), from the host's pgbench.

Starts its own daemon (free loopback ports) and removes the service, its volume and the host
cluster afterwards. Prints each result and one JSON line; exits 1 if the service's TPS is
below 0.9x the host's.

    .venv/bin/python bench/services.py [--seconds 15] [--clients 4] [--scale 10]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import free_port
from tests.integration.paas_helpers import PaasDaemon, run, unique

GOAL = 0.9
BIN = Path("/usr/lib/postgresql/15/bin")
_TPS = re.compile(r"tps = ([0-9.]+) \(without initial connection time\)")


def tps(output: str) -> float:
    """The TPS pgbench reports."""
    match = _TPS.search(output)
    if not match:
        raise SystemExit(f"pgbench said:\n{output[-2000:]}")
    return float(match.group(1))


class Pgbench:
    """pgbench runs (init, then timed runs) against one server."""

    def __init__(self, argv: list[str], target: list[str], args: argparse.Namespace) -> None:
        self.argv, self.target, self.args = argv, target, args

    def init(self) -> None:
        res = run([*self.argv, "-i", "-q", "-s", str(self.args.scale), *self.target],
                  timeout=600)
        assert res.returncode == 0, res.stderr

    def tps(self) -> float:
        res = run([*self.argv, "-c", str(self.args.clients), "-j", "2", "-T",
                   str(self.args.seconds), *self.target], timeout=self.args.seconds + 120)
        return tps(res.stdout)


def create_service(daemon: PaasDaemon, name: str) -> dict[str, float]:
    """Image (built if missing), then ``postgres:create``, each timed."""
    built = time.monotonic()
    daemon.ok("images:bootstrap", "--services", timeout=900)
    image_s = time.monotonic() - built
    started = time.monotonic()
    daemon.ok("postgres:create", name, timeout=900)
    return {"image_s": image_s, "create_to_ready_s": time.monotonic() - started}


class HostPostgres:
    """Debian's postgres 15 run as the postgres user on this host, ``initdb`` defaults."""

    def __init__(self) -> None:
        if not (BIN / "postgres").exists():
            raise SystemExit("apt-get install postgresql-15 on the host to compare")
        self.tmp = tempfile.mkdtemp(prefix="shipmate-pgbench-")
        os.chown(self.tmp, *_ids())
        self.port = free_port()
        self.as_pg = ["runuser", "-u", "postgres", "--"]
        data = f"{self.tmp}/data"
        res = run([*self.as_pg, str(BIN / "initdb"), "-D", data, "-U", "postgres", "-E",
                   "UTF8", "--locale=C"], timeout=120)
        assert res.returncode == 0, res.stderr
        self.server = subprocess.Popen(
            [*self.as_pg, str(BIN / "postgres"), "-D", data, "-p", str(self.port), "-c",
             "listen_addresses=127.0.0.1", "-k", self.tmp],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if run([str(BIN / "pg_isready"), "-h", "127.0.0.1", "-p",
                    str(self.port)]).returncode == 0:
                break
            time.sleep(0.1)

    def pgbench(self, args: argparse.Namespace) -> Pgbench:
        return Pgbench([*self.as_pg, str(BIN / "pgbench")],
                       ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "postgres"],
                       args)

    def stop(self) -> None:
        self.server.terminate()
        self.server.wait(timeout=60)
        shutil.rmtree(self.tmp, ignore_errors=True)


def _ids() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating runs on each (the median counts: a shared machine's "
                             "load drifts)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="shipmate-bench-services-"))
    (base / "state").mkdir()
    daemon, name = PaasDaemon(base / "state", cache=True), unique("bench")
    host: HostPostgres | None = None
    try:
        daemon.up()
        timing = create_service(daemon, name)
        dsn = daemon.ok("postgres:info", name, "--dsn").strip()
        service = Pgbench(["docker", "run", "--rm", "--network",
                           f"shipmate-svc-postgres-{name}", "shipmate/postgres:15", "pgbench"],
                          [dsn], args)
        host = HostPostgres()
        on_host = host.pgbench(args)
        service.init()
        on_host.init()
        runs = [(service.tps(), on_host.tps()) for _ in range(args.rounds)]
    finally:
        if host is not None:
            host.stop()
        daemon.cli("postgres:destroy", name, "--force", timeout=120)
        daemon.down()
        shutil.rmtree(base, ignore_errors=True)
    svc_tps = statistics.median(r[0] for r in runs)
    host_tps = statistics.median(r[1] for r in runs)
    ratio = svc_tps / host_tps if host_tps else 0.0
    print(f"image ready in {timing['image_s']:.1f} s (built if missing)")
    print(f"postgres:create to accepting connections: {timing['create_to_ready_s']:.1f} s")
    for i, (a, b) in enumerate(runs, 1):
        print(f"round {i}: service {a:.0f} TPS, host {b:.0f} TPS")
    print(f"pgbench TPS (median): service {svc_tps:.0f}, host {host_tps:.0f}, ratio {ratio:.2f} "
          f"(goal >= {GOAL})")
    print(json.dumps({**timing, "tps": svc_tps, "host_tps": host_tps, "ratio": round(ratio, 3),
                      "runs": runs}))
    return 0 if ratio >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
