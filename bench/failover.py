"""Failover time: a machine dies (SIGKILL of its daemon); how long until its unit runs on
another machine? Three ``shipmate daemon`` processes on one real etcd, default settings
(agent TTL 3 s). Prints each run and the median over RUNS runs.

    .venv/bin/python bench/failover.py [RUNS]
    .venv/bin/python bench/failover.py --cluster [--runs N]   (a real local cluster)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shipmate.scheduler.registry import Registry
from shipmate.store.etcd import EtcdStore

UNIT = "[Service]\nExecStart=/bin/sleep 100000\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_etcd(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    client, peer = free_port(), free_port()
    endpoint = f"http://127.0.0.1:{client}"
    log = open(root / "etcd.log", "ab")  # noqa: SIM115 - kept by the process
    proc = subprocess.Popen(
        ["etcd", "--data-dir", str(root / "etcd"), "--listen-client-urls", endpoint,
         "--advertise-client-urls", endpoint,
         "--listen-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-cluster", f"default=http://127.0.0.1:{peer}"], stdout=log, stderr=log)
    return proc, endpoint


def daemon_env(root: Path, machine: str, endpoint: str) -> dict[str, str]:
    state = root / machine
    state.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "SHIPMATE_MACHINE_ID": machine, "SHIPMATE_STATE_DIR": str(state),
            "SHIPMATE_STORE": "etcd", "SHIPMATE_ETCD_ENDPOINTS": endpoint,
            "SHIPMATE_ROUTER": "0", "SHIPMATE_CACHE": "0", "SHIPMATE_SSH": "0",
            "SHIPMATE_SOCKET": str(state / "api.sock")}


def start_daemon(root: Path, machine: str, endpoint: str) -> subprocess.Popen[bytes]:
    log = open(root / f"{machine}.log", "ab")  # noqa: SIM115 - kept by the process
    return subprocess.Popen([sys.executable, "-m", "shipmate.cli.main", "daemon"],
                            env=daemon_env(root, machine, endpoint), stdout=log, stderr=log)


def kill_leftovers(root: Path, machine: str) -> None:
    """A SIGKILLed daemon leaves its units running (they are adopted on restart): the
    benchmark kills them so the dead machine is really dead."""
    for rec in (root / machine / "agent" / "units").glob("*.json"):
        with contextlib.suppress(ValueError, OSError, ProcessLookupError):
            pid = int(json.loads(rec.read_text()).get("main_pid", 0))
            if pid:
                os.killpg(pid, signal.SIGKILL)
        rec.unlink(missing_ok=True)


async def wait_for(pred, timeout: float = 60.0) -> float:  # type: ignore[no-untyped-def]
    began = time.monotonic()
    while not await pred():
        if time.monotonic() - began > timeout:
            raise RuntimeError("timed out")
        await asyncio.sleep(0.02)
    return time.monotonic() - began


async def one_run(reg: Registry, root: Path, endpoint: str,
                  daemons: dict[str, subprocess.Popen[bytes]], env: dict[str, str],
                  run: int) -> float:
    name = f"bench{run}.service"
    (root / name).write_text(UNIT)
    subprocess.run([sys.executable, "-m", "shipmate.cli.main", "fleet", "start",
                    str(root / name)], env=env, check=True, capture_output=True)

    async def where() -> str | None:
        for st in await reg.unit_states():
            if st.unit == name and st.active_state == "active":
                return st.machine
        return None

    await wait_for(lambda: _truthy(where()))
    victim = await where()
    assert victim is not None
    daemons[victim].send_signal(signal.SIGKILL)
    daemons[victim].wait()
    killed = time.monotonic()

    async def moved() -> bool:
        m = await where()
        return m is not None and m != victim

    await wait_for(moved)
    took = time.monotonic() - killed
    kill_leftovers(root, victim)
    daemons[victim] = start_daemon(root, victim, endpoint)
    await wait_for(lambda: _has_machine(reg, victim))
    return took


async def _truthy(aw) -> bool:  # type: ignore[no-untyped-def]
    return bool(await aw)


async def _has_machine(reg: Registry, machine: str) -> bool:
    return machine in await reg.machines()


async def main(runs: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="shipmate-failover-"))
    etcd, endpoint = start_etcd(root)
    daemons: dict[str, subprocess.Popen[bytes]] = {}
    try:
        await asyncio.sleep(1.5)
        store = await EtcdStore.connect([endpoint])
        reg = Registry(store)
        for i in range(3):
            daemons[f"machine{i}"] = start_daemon(root, f"machine{i}", endpoint)
        await wait_for(lambda: _count(reg, 3))
        env = daemon_env(root, "machine0", endpoint)
        times = []
        for run in range(runs):
            # the CLI talks to a machine that is alive
            alive = next(m for m, p in daemons.items() if p.poll() is None)
            env = daemon_env(root, alive, endpoint)
            took = await one_run(reg, root, endpoint, daemons, env, run)
            times.append(took)
            print(f"run {run + 1}: unit running elsewhere {took:.2f} s after SIGKILL", flush=True)
        print(f"median failover over {runs} runs: {statistics.median(times):.2f} s "
              f"(min {min(times):.2f}, max {max(times):.2f}; agent TTL 3 s)")
        await store.close()
    finally:
        for machine, proc in daemons.items():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(20)
            kill_leftovers(root, machine)
        etcd.terminate()
        etcd.wait()
        shutil.rmtree(root, ignore_errors=True)


async def _count(reg: Registry, n: int) -> bool:
    return len(await reg.machines()) >= n


def cluster_mode(argv: list[str]) -> None:
    """``--cluster``: the same question on a real local cluster (Docker-in-Docker machines,
    a three-member etcd, routers under load); see bench/failover_cluster.py."""
    from failover_cluster import main as run_cluster  # bench/ is on sys.path as a script

    run_cluster(argv)


if __name__ == "__main__":
    if "--cluster" in sys.argv[1:]:
        cluster_mode(sys.argv[1:])
    else:
        asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5))
