#!/usr/bin/env python3
"""No-op apply of 50 containers: Shipmate vs ``docker-compose up -d``.

Creates 50 idle containers from a generated manifest (and 50 more from an equivalent compose
file, under another project name), then times re-applying each when nothing changed. Prints
the median and best of several runs, in process and as a CLI call (Python start-up included,
as docker-compose's is). Target: Shipmate's no-op apply under 1 s. Cleans up after itself.

    .venv/bin/python bench/converge.py [--count 50] [--runs 5] [--keep] [--skip-compose]

docker-compose (Debian's 1.29) is installed first when missing and we are root
(``scripts/bootstrap docker-compose``, i.e. ``apt-get install -y docker-compose``); otherwise
the bench says how, or runs without it given ``--skip-compose``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shipmate.converge.apply import apply_manifest
from shipmate.engine.docker import DockerEngine
from shipmate.spec.manifest import MANIFEST_LABEL, load_manifest

IMAGE = "shipmate/base:bookworm"
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep infinity & wait"]
NAME = "bench-converge"
ROOT = Path(__file__).resolve().parents[1]


def write_files(tmp: Path, count: int) -> tuple[Path, Path]:
    """The manifest and the equivalent compose file (JSON is valid YAML)."""
    containers = {f"{NAME}-{i:02d}": {"image": IMAGE, "command": COMMAND,
                                      "env": {"INDEX": str(i)}, "restart": "unless-stopped"}
                  for i in range(count)}
    manifest = tmp / "bench.yaml"
    manifest.write_text(json.dumps({"name": NAME, "containers": containers}, indent=1))
    services = {f"svc{i:02d}": {"image": IMAGE, "command": COMMAND,
                                "environment": {"INDEX": str(i)}, "restart": "unless-stopped"}
                for i in range(count)}
    compose = tmp / "docker-compose.yml"
    compose.write_text(json.dumps({"version": "2.4", "services": services}, indent=1))
    return manifest, compose


async def shipmate_inprocess(engine: DockerEngine, manifest: Path, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = await apply_manifest(engine, load_manifest(manifest))
        times.append(time.perf_counter() - t0)
        if result.outcomes:
            raise SystemExit(f"not a no-op: {[o.message for o in result.outcomes]}")
    return times


def timed(cmd: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return times


def ensure_compose() -> None:
    """docker-compose on PATH: installed (as root) when missing, or a clear exit saying how."""
    if shutil.which("docker-compose"):
        return
    how = "apt-get install -y docker-compose (as root), or run with --skip-compose"
    if os.geteuid() != 0:
        raise SystemExit(f" !     docker-compose is missing (the reference tool): {how}")
    print("-----> installing docker-compose (scripts/bootstrap docker-compose)", flush=True)
    done = subprocess.run(["bash", str(ROOT / "scripts/bootstrap"), "docker-compose"],
                          check=False)
    if done.returncode != 0 or not shutil.which("docker-compose"):
        raise SystemExit(f" !     installing docker-compose failed (above): {how}")


def line(label: str, times: list[float]) -> str:
    return (f"  {label:<38} median {statistics.median(times):6.3f} s   "
            f"best {min(times):6.3f} s   ({len(times)} runs)")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="leave the containers running")
    parser.add_argument("--skip-compose", action="store_true",
                        help="time Shipmate only (no docker-compose to compare with)")
    opts = parser.parse_args()
    compose_too = not opts.skip_compose
    if compose_too:
        ensure_compose()
    engine = DockerEngine("unix:///var/run/docker.sock")
    tmp = Path(tempfile.mkdtemp(prefix="shipmate-bench-"))
    manifest, compose = write_files(tmp, opts.count)
    compose_cmd = ["docker-compose", "-p", "benchcompose", "-f", str(compose), "up", "-d"]
    try:
        print(f"setting up {opts.count} containers with each tool ...", flush=True)
        first = await apply_manifest(engine, load_manifest(manifest))
        if not first.ok:
            raise SystemExit(f"apply failed: {[o.message for o in first.failures]}")
        if compose_too:
            subprocess.run(compose_cmd, check=True, capture_output=True)
        inproc = await shipmate_inprocess(engine, manifest, opts.runs)
        cli = timed([str(ROOT / ".venv/bin/shipmate"), "apply", "--yes", str(manifest)],
                    opts.runs)
        dc = timed(compose_cmd, opts.runs) if compose_too else []
        print(f"no-op apply of {opts.count} containers (target: under 1 s)")
        print(line("shipmate apply (in process)", inproc))
        print(line("shipmate apply (CLI)", cli))
        if dc:
            print(line("docker-compose up -d (1.29)", dc))
        ok = statistics.median(inproc) < 1.0
        versus = (f": {statistics.median(dc) / statistics.median(cli):.1f}x faster than "
                  "compose (CLI)" if dc else " (docker-compose skipped)")
        print(f"  target {'met' if ok else 'MISSED'}{versus}")
        return 0 if ok else 1
    finally:
        if not opts.keep:
            for c in await engine.list({MANIFEST_LABEL: NAME}):
                await engine.remove(c.id, force=True)
            if compose_too:
                subprocess.run(["docker-compose", "-p", "benchcompose", "-f", str(compose),
                                "down", "-t", "1"], capture_output=True)
        await engine.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
