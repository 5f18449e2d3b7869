"""``shipmate cluster supervise``: the init of a cluster machine. Runs this machine's etcd
member (when it is one) and its Shipmate daemon from ``STATE_DIR/machine.json``, starts each
again when it exits, and stops both (daemon first) on SIGTERM or when the machine leaves the
cluster (the file is gone). One per state dir: a lock file keeps a second one out, so
``cluster init``/``join`` and a boot script (or a systemd unit) may both start it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from shipmate.clock import within
from shipmate.cluster import machine as mach
from shipmate.cluster.ca import pki
from shipmate.errors import ClusterError, ShipmateError

log = logging.getLogger(__name__)
LOCK = "supervise.lock"
PID = "supervise.pid"
RESTART_PAUSE = 1.0
ALREADY_RUNNING = 3  # exit status when another supervisor holds the lock


def _etcd_env(args: list[str]) -> dict[str, str]:
    """The environment without the ``ETCD_*`` variables the command line sets (etcd refuses
    a setting given both ways); the others (heartbeat, election timeout) pass."""
    flags = {"ETCD_" + a[2:].upper().replace("-", "_") for a in args if a.startswith("--")}
    return {k: v for k, v in os.environ.items() if k not in flags}


class Child:
    """One supervised process: its command line, environment and log."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name, self.argv, self.env, self.log_path = name, argv, env, log_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start it, appending its output to its log."""
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, env=self.env)
        finally:
            os.close(fd)
        log.info("started %s (pid %s)", self.name, self.proc.pid)

    async def run(self, stopping: asyncio.Event) -> None:
        """Keep it running until ``stopping`` is set."""
        while not stopping.is_set():
            try:
                await self.start()
            except OSError as exc:  # e.g. etcd is not installed: say so, and try again
                log.error("cannot start %s: %s", self.name, exc)
            else:
                assert self.proc is not None
                code = await self.proc.wait()
                log.warning("%s exited with status %s", self.name, code)
            with contextlib.suppress(TimeoutError):
                await within(stopping.wait(), RESTART_PAUSE)

    async def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await within(proc.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


def _lock(state_dir: Path) -> IO[str] | None:
    """The supervisor lock, or None when another supervisor holds it."""
    handle = open(Path(state_dir) / LOCK, "a+")  # noqa: SIM115 - held for the process's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def children(state_dir: Path, mc: mach.MachineConfig) -> list[Child]:
    """etcd (on a member) and the daemon, in start order."""
    logs = mach.log_dir(state_dir, mc)
    logs.mkdir(parents=True, exist_ok=True)
    out = []
    if mc.member:
        args = mach.etcd_args(state_dir, mc)
        out.append(Child("etcd", args, _etcd_env(args), logs / "etcd.log"))
    env = {**os.environ, **mach.daemon_env(state_dir, mc)}
    out.append(Child("daemon", [sys.executable, "-m", "shipmate.cli.main", "daemon"], env,
                     logs / "daemon.log"))
    return out


async def supervise(state_dir: Path) -> int:
    """Run this machine's etcd and daemon until SIGTERM or until it leaves the cluster."""
    handle = _lock(state_dir)
    if handle is None:
        return ALREADY_RUNNING
    mc = mach.load(state_dir)
    if mc is None:
        raise ClusterError(f"this machine is in no cluster ({mach.path(state_dir)} is missing)",
                           hint="run `shipmate cluster init` or `shipmate cluster join`")
    (Path(state_dir) / PID).write_text(f"{os.getpid()}\n")
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    procs = children(state_dir, mc)
    tasks = [asyncio.create_task(c.run(stopping)) for c in procs[:-1]]  # etcd first
    try:
        if mc.carry_from and not await _carry(state_dir, mc):
            return 1  # no daemon on a store missing the machine's apps: see the log
        tasks.append(asyncio.create_task(procs[-1].run(stopping)))
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await within(stopping.wait(), 1.0)
            if not mach.path(state_dir).exists():
                log.info("machine.json is gone: this machine left its cluster")
                stopping.set()
    finally:
        for child in reversed(procs):  # the daemon first: it still needs etcd to stop
            await child.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(FileNotFoundError):
            (Path(state_dir) / PID).unlink()
        handle.close()
    return 0


async def _carry(state_dir: Path, mc: mach.MachineConfig, *, timeout: float = 60.0) -> bool:
    """Carry the single-machine store into etcd once etcd answers; True when done (the
    machine file then forgets it)."""
    from shipmate.cluster.carry import carry_file
    from shipmate.cluster.tlsfiles import etcd_tls
    from shipmate.store.etcd import EtcdStore

    deadline = time.monotonic() + timeout
    while True:
        try:
            store = await EtcdStore.connect(list(mc.endpoints), tls=etcd_tls(
                pki(state_dir).dir), timeout=3.0)
            break
        except ShipmateError as exc:
            if time.monotonic() > deadline:
                log.error("etcd does not answer, nothing carried: %s", exc)
                return False
            await asyncio.sleep(0.5)
    try:
        n = await carry_file(Path(mc.carry_from), store)
    except ShipmateError as exc:
        log.error("could not carry %s into etcd: %s", mc.carry_from, exc)
        return False
    finally:
        await store.close()
    log.info("carried %d keys of the single-machine store into etcd", n)
    mach.save(state_dir, dataclasses.replace(mc, carry_from=""))
    return True


def running(state_dir: Path) -> int | None:
    """The PID of this state dir's supervisor, or None."""
    handle = _lock(state_dir)
    if handle is not None:
        handle.close()
        return None
    try:
        return int((Path(state_dir) / PID).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def spawn(state_dir: Path, mc: mach.MachineConfig) -> None:
    """Start the supervisor detached (unless one runs already), output to its log."""
    if running(state_dir) is not None:
        return
    logs = mach.log_dir(state_dir, mc)
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "supervise.log", "ab") as out:
        subprocess.Popen(
            [sys.executable, "-m", "shipmate.cli.main", "--state-dir", str(state_dir),
             "cluster", "supervise"], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True, close_fds=True)


def stop(state_dir: Path, *, timeout: float = 40.0) -> bool:
    """Stop the supervisor (it stops the daemon, then etcd); True when one was running."""
    pid = running(state_dir)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while running(state_dir) is not None:
        if time.monotonic() > deadline:
            raise ClusterError(f"the cluster supervisor (pid {pid}) did not stop",
                               hint=f"kill it: kill {pid}")
        time.sleep(0.2)
    return True
