"""Push-to-live time of examples/node-js-app: from the start of ``git push`` until the router
answers ``Host: APP.shipmate.test`` on 127.0.0.1 with the pushed revision.

- cold: the first push of a new app name (a fresh image tag). Its package.json carries a token
  unique to the run, so even the dependency layer is built anew (only the base image
  shipmate/node:18 is reused).
- warm: a code-only change (server.js) pushed to that app: the dependency layer is reused.

Starts its own daemon (router, SSH, package cache) on free loopback ports and stops it after.
Prints each run, then the cold time and the median warm time; exits 1 if warm >= 10 s.

    .venv/bin/python bench/deploy.py [--warm-runs 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.paas_helpers import (
    PaasDaemon,
    commit,
    head,
    unique,
    work_tree,
)

TARGET_WARM = 10.0
LIVE_TIMEOUT = 120.0


def push_to_live(daemon: PaasDaemon, tree: Path, app: str) -> tuple[float, float]:
    """Push HEAD; (seconds until git push returned, seconds until the revision answers)."""
    rev = head(tree)[:7]
    started = time.monotonic()
    res = daemon.push(tree, app)
    pushed = time.monotonic() - started
    if res.returncode != 0:
        raise SystemExit(f"push failed:\n{res.stderr[-3000:]}")
    while True:
        status, body = daemon.get(app, timeout=5)
        if status == 200 and f"revision {rev}" in body:
            return pushed, time.monotonic() - started
        if time.monotonic() - started > LIVE_TIMEOUT:
            raise SystemExit(f"{app} never served {rev}: {status} {body[:200]}")
        time.sleep(0.02)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm-runs", type=int, default=3)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="shipmate-bench-deploy-"))
    (base / "state").mkdir()
    daemon = PaasDaemon(base / "state")
    app = unique("deploy")
    warm: list[float] = []
    try:
        daemon.up()
        tree = work_tree(base / "tree")
        package = json.loads((tree / "package.json").read_text())
        package["description"] = f"bench run {uuid.uuid4().hex}"  # a dependency layer anew
        commit(tree, "cold", {"package.json": json.dumps(package, indent=2) + "\n"})
        pushed, cold = push_to_live(daemon, tree, app)
        print(f"cold: live in {cold:.2f} s (git push returned after {pushed:.2f} s)", flush=True)
        for n in range(args.warm_runs):
            server = (tree / "server.js").read_text() + f"// change {n}\n"
            commit(tree, f"code change {n}", {"server.js": server})
            pushed, live = push_to_live(daemon, tree, app)
            warm.append(live)
            print(f"warm {n + 1}: live in {live:.2f} s (git push returned after {pushed:.2f} s)",
                  flush=True)
    finally:
        daemon.down()
        shutil.rmtree(base, ignore_errors=True)
    median = statistics.median(warm)
    print(f"push-to-live cold: {cold:.2f} s")
    print(f"push-to-live warm: {median:.2f} s (median of {len(warm)}; target < {TARGET_WARM:g} s)")
    return 0 if median < TARGET_WARM else 1


if __name__ == "__main__":
    sys.exit(main())
