"""CLI start-up benchmark: wall time of whole ``shipmate`` processes against a running daemon.

Starts a daemon in a temporary state dir (SQLite store; router, cache and SSH off, so it
binds no port), then runs ``shipmate --version``, ``shipmate apps:list`` and ``shipmate fleet
list-units`` in turn, round after round (so a slow moment of the machine weighs on every
command alike), after one warm-up round. Prints each command's median, min and max wall time
in milliseconds and PASS or FAIL against the goal (a thin command is a thin client: under
150 ms each), with ``docker ps`` as a yardstick when docker is installed. Exits 1 on a FAIL.
The median CPU time (user + system) of each command is printed beside: on a busy machine the
wall time waits for a processor, the CPU time much less so.

    .venv/bin/python bench/cli.py [--runs 20] [--goal-ms 150]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

COMMANDS = (("--version",), ("apps:list",), ("fleet", "list-units"))
GOAL_MS = 150.0


def shipmate_command() -> list[str]:
    """The ``shipmate`` script users run (beside this Python), or ``python -m`` without it."""
    script = Path(sys.executable).parent / "shipmate"
    return [str(script)] if script.exists() else [sys.executable, "-m", "shipmate.cli.main"]


def daemon_env(state_dir: Path) -> dict[str, str]:
    """A daemon of its own: its state dir, SQLite, and nothing that listens on a port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPMATE_")}
    env.update(SHIPMATE_STATE_DIR=str(state_dir), SHIPMATE_STORE="sqlite", SHIPMATE_ROUTER="0",
               SHIPMATE_CACHE="0", SHIPMATE_SSH="0", SHIPMATE_API_PORT="0",
               SHIPMATE_MACHINE_ID="bench-cli")
    return env


@contextlib.contextmanager
def running_daemon(env: dict[str, str], timeout: float = 60.0) -> Iterator[None]:
    """``shipmate daemon`` in the background until the block ends."""
    log = Path(env["SHIPMATE_STATE_DIR"]) / "daemon.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([*shipmate_command(), "daemon"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while run(env, ("status",))[0] != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the daemon did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(env: dict[str, str], args: tuple[str, ...],
        argv0: list[str] | None = None) -> tuple[int, float]:
    """Run one command, its output thrown away: its exit status and CPU milliseconds."""
    proc = subprocess.Popen([*(argv0 or shipmate_command()), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, (usage.ru_utime + usage.ru_stime) * 1000


def timed(env: dict[str, str], args: tuple[str, ...],
          argv0: list[str] | None = None) -> tuple[float, float]:
    """Wall and CPU milliseconds of one whole process (start-up included); a failure ends the
    bench."""
    started = time.perf_counter()
    code, cpu = run(env, args, argv0)
    took = (time.perf_counter() - started) * 1000
    if code != 0:
        raise SystemExit(f"{' '.join(args)} exited {code}")
    return took, cpu


def measure(env: dict[str, str], runs: int) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) milliseconds per command over ``runs`` rounds (after a warm-up round)."""
    targets: dict[str, tuple[list[str] | None, tuple[str, ...]]] = {
        "shipmate " + " ".join(c): (None, c) for c in COMMANDS}
    if shutil.which("docker"):
        targets["docker ps (yardstick)"] = (["docker"], ("ps",))
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
    for r in range(runs + 1):
        for name, (argv0, args) in targets.items():
            took = timed(env, args, argv0)
            if r:
                times[name].append(took)
    return times


def report(times: dict[str, list[tuple[float, float]]], goal: float) -> bool:
    """Print one row per command; True when every shipmate command met the goal."""
    ok = True
    print(f"{'verdict':7}  {'command':28} {'median':>8} {'min':>8} {'max':>8} {'cpu':>8}  goal")
    for name, samples in times.items():
        ms = [wall for wall, _ in samples]
        cpu = statistics.median(c for _, c in samples)
        median = statistics.median(ms)
        if name.startswith("shipmate"):
            verdict = "PASS" if median < goal else "FAIL"
            ok &= verdict == "PASS"
        else:
            verdict = "-"
        print(f"{verdict:7}  {name:28} {median:6.1f}ms {min(ms):6.1f}ms {max(ms):6.1f}ms"
              f" {cpu:6.1f}ms  {'< ' + format(goal, 'g') + ' ms' if verdict != '-' else ''}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed rounds (default 20)")
    parser.add_argument("--goal-ms", type=float, default=GOAL_MS,
                        help=f"goal per command, median ms (default {GOAL_MS:g})")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shipmate-bench-cli-") as tmp:
        env = daemon_env(Path(tmp))
        with running_daemon(env):
            times = measure(env, args.runs)
    return 0 if report(times, args.goal_ms) else 1


if __name__ == "__main__":
    sys.exit(main())
