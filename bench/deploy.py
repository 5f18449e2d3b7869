"""Push-to-live time of an example app: from the start of ``git push`` until the router
answers ``Host: APP.shipmate.test`` on 127.0.0.1 with the pushed revision.

- ``--app node``: examples/node-js-app (an explicit ``/health`` check in app.json).
- ``--app flask``: examples/flask-app (Flask 3.0.3 from a pinned requirements.txt through the
  package cache, ``web: python3 app.py``, no checks: the default check and the stay-up wait,
  setting ``checks_wait``).
- cold: the first push of a new app name (a fresh image tag). Its dependency manifest carries
  a token unique to the run, so even the dependency layer is built anew (only the base image
  is reused).
- warm: a code-only change pushed to that app: the dependency layer is reused.

Starts its own daemon (router, SSH, package cache) on free loopback ports and stops it after.
Prints every push (with the deploy's own step times), then the median, the 95th percentile
and the slowest warm push, and the verdicts of issue 24's goals; exits 1 if one fails.

    .venv/bin/python bench/deploy.py [--app node|flask] [--warm-runs 20]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.paas_helpers import (
    ROOT,
    PaasDaemon,
    commit,
    head,
    unique,
    work_tree,
)

from shipmate.paas.builders.checks import DEFAULT_WAIT

LIVE_TIMEOUT = 120.0
SPREAD = 1.5  # no warm push above this many times the median
NODE_MEDIAN = 1.5  # seconds, warm, with its explicit check
FLASK_OVER_WAIT = 1.5  # seconds above the stay-up wait, warm, without checks


@dataclass(frozen=True)
class Example:
    """An app the bench pushes: where it is, how a run makes its dependency layer new, and
    the code-only change of a warm push."""

    path: Path
    dependency_file: str
    fresh_dependencies: Callable[[str, str], str]  # (text, token) -> text
    code_file: str
    comment: str  # how a line comment starts in code_file


def _package_json(text: str, token: str) -> str:
    package = json.loads(text)
    package["description"] = f"bench run {token}"
    return json.dumps(package, indent=2) + "\n"


EXAMPLES = {
    "node": Example(ROOT / "examples" / "node-js-app", "package.json", _package_json,
                    "server.js", "//"),
    "flask": Example(ROOT / "examples" / "flask-app", "requirements.txt",
                     lambda text, token: f"{text}# bench run {token}\n", "app.py", "#"),
}


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (p in 0..100) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def verdicts(app: str, warm: Sequence[float], wait: float) -> list[tuple[bool, str]]:
    """Issue 24's goals for the warm pushes of ``app`` (``wait``: the stay-up wait): node's
    median; Flask's median over the wait, and no push above 1.5 x the median (no stall)."""
    median, slowest = statistics.median(warm), max(warm)
    if app == "node":
        return [(median <= NODE_MEDIAN, f"median {median:.2f} s <= {NODE_MEDIAN:g} s")]
    limit = wait + FLASK_OVER_WAIT
    return [(slowest <= SPREAD * median,
             f"slowest {slowest:.2f} s <= {SPREAD:g} x median ({SPREAD * median:.2f} s)"),
            (median <= limit,
             f"median {median:.2f} s <= stay-up wait {wait:g} s + {FLASK_OVER_WAIT:g} s")]


def push_to_live(daemon: PaasDaemon, tree: Path, app: str) -> tuple[float, float, str]:
    """Push HEAD; (seconds until git push returned, seconds until the revision answers, the
    deploy's own step times)."""
    rev = head(tree)[:7]
    started = time.monotonic()
    res = daemon.push(tree, app)
    pushed = time.monotonic() - started
    if res.returncode != 0:
        raise SystemExit(f"push failed:\n{res.stderr[-3000:]}")
    steps = re.search(r"Application deployed: v\d+ in (.*)", res.stderr)
    while True:
        status, body = daemon.get(app, timeout=5)
        if status == 200 and f"revision {rev}" in body:
            return pushed, time.monotonic() - started, steps.group(1).strip() if steps else ""
        if time.monotonic() - started > LIVE_TIMEOUT:
            raise SystemExit(f"{app} never served {rev}: {status} {body[:200]}")
        time.sleep(0.02)


def _run(daemon: PaasDaemon, example: Example, base: Path, warm_runs: int) -> list[float]:
    app = unique("deploy")
    tree = work_tree(base / "tree", example.path)
    deps = (tree / example.dependency_file).read_text()
    commit(tree, "cold", {example.dependency_file: example.fresh_dependencies(
        deps, uuid.uuid4().hex)})
    pushed, live, steps = push_to_live(daemon, tree, app)
    print(f"cold: live in {live:.2f} s (git push returned after {pushed:.2f} s; {steps})",
          flush=True)
    warm: list[float] = []
    for n in range(warm_runs):
        code = (tree / example.code_file).read_text() + f"{example.comment} change {n}\n"
        commit(tree, f"code change {n}", {example.code_file: code})
        pushed, live, steps = push_to_live(daemon, tree, app)
        warm.append(live)
        print(f"warm {n + 1}: live in {live:.2f} s (git push returned after {pushed:.2f} s; "
              f"{steps})", flush=True)
    return warm


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", choices=sorted(EXAMPLES), default="node")
    parser.add_argument("--warm-runs", type=int, default=3)
    args = parser.parse_args()
    if args.warm_runs < 1:
        parser.error("--warm-runs must be at least 1")
    base = Path(tempfile.mkdtemp(prefix="shipmate-bench-deploy-"))
    (base / "state").mkdir()
    daemon = PaasDaemon(base / "state")
    try:
        daemon.up()
        warm = _run(daemon, EXAMPLES[args.app], base, args.warm_runs)
    finally:
        daemon.down()
        shutil.rmtree(base, ignore_errors=True)
    print(f"warm push-to-live of {args.app} over {len(warm)} pushes: "
          f"median {statistics.median(warm):.2f} s, 95th percentile "
          f"{percentile(warm, 95):.2f} s, slowest {max(warm):.2f} s")
    results = verdicts(args.app, warm, DEFAULT_WAIT)
    for ok, text in results:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
