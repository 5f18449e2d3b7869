"""Several machines: ``shipmate daemon`` processes (one machine ID, state dir and socket
each) sharing one real etcd, driven with ``shipmate fleet``. The fleet walk-through, conflicts,
failover after SIGKILL, and adoption by a restarted daemon."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shipmate.scheduler.registry import Registry
from shipmate.store.etcd import EtcdStore
from tests.conftest import EtcdServer
from tests.integration.test_agent_containers import build_tiny_image

pytestmark = pytest.mark.integration
RUN = uuid.uuid4().hex[:6]


class Machine:
    """One ``shipmate daemon`` process."""

    def __init__(self, index: int, root: Path, endpoint: str) -> None:
        self.index = index
        self.id = f"{index}{RUN}machine"  # fleetctl shows the first 8 characters
        self.ip = f"127.0.0.{index + 1}"
        self.dir = root / f"m{index}"
        self.env = {
            **os.environ, "SHIPMATE_MACHINE_ID": self.id, "SHIPMATE_STATE_DIR": str(self.dir),
            "SHIPMATE_STORE": "etcd", "SHIPMATE_ETCD_ENDPOINTS": endpoint,
            "SHIPMATE_ROUTER": "0", "SHIPMATE_CACHE": "0", "SHIPMATE_SSH": "0",
            "SHIPMATE_SOCKET": str(self.dir / "api.sock"), "SHIPMATE_PUBLIC_IP": self.ip,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        log = open(self.dir / "daemon.log", "ab")  # noqa: SIM115 - kept by the process
        self.proc = subprocess.Popen([sys.executable, "-m", "shipmate.cli.main", "daemon"],
                                     env=self.env, stdout=log, stderr=log)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(30)

    def fleet(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([sys.executable, "-m", "shipmate.cli.main", "fleet", *args],
                             env=self.env, capture_output=True, text=True, timeout=90,
                             cwd=self.dir.parent)
        if check and res.returncode != 0:
            raise AssertionError(f"fleet {' '.join(args)}: {res.returncode}\n{res.stderr}")
        return res

    def leftover_pids(self) -> list[int]:
        pids = []
        for rec in (self.dir / "agent" / "units").glob("*.json"):
            with contextlib.suppress(ValueError, OSError):
                pids.append(int(json.loads(rec.read_text()).get("main_pid", 0)))
        return [p for p in pids if p]


class Cluster:
    def __init__(self, root: Path, etcd: EtcdServer) -> None:
        self.root = root
        self.etcd = etcd
        self.machines: list[Machine] = []

    def add(self) -> Machine:
        m = Machine(len(self.machines), self.root, self.etcd.endpoint)
        self.machines.append(m)
        m.start()
        return m

    def cleanup(self) -> None:
        live = [m for m in self.machines if m.proc and m.proc.poll() is None]
        if live:
            units = [p.name for p in self.root.glob("*.service")]
            units += [p.name for p in self.root.glob("*.container")]
            with contextlib.suppress(Exception):
                live[0].fleet("destroy", *units, check=False)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and live[0].fleet(
                        "list-units", "--no-legend", check=False).stdout.strip():
                    time.sleep(0.5)
        for m in self.machines:
            if m.proc and m.proc.poll() is None:
                m.signal(signal.SIGTERM)
            for pid in m.leftover_pids():  # units a killed or stopped daemon left running
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
            ids = subprocess.run(["docker", "ps", "-aq", "--filter",
                                  f"label=shipmate.machine={m.id}"],
                                 capture_output=True, text=True).stdout.split()
            if ids:
                subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)


@pytest.fixture
def etcd() -> Iterator[EtcdServer]:
    server = EtcdServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def cluster(tmp_path: Path, etcd: EtcdServer) -> Iterator[Cluster]:
    c = Cluster(tmp_path, etcd)
    yield c
    c.cleanup()


@pytest.fixture
async def registry(etcd: EtcdServer) -> AsyncIterator[Registry]:
    store = await EtcdStore.connect([etcd.endpoint], timeout=2.0)
    yield Registry(store)
    await store.close()


async def until(pred: Callable[[], Any], timeout: float = 30.0, what: str = "") -> float:
    began = time.monotonic()
    while True:
        result = pred()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise AssertionError(f"not reached in {timeout}s: {what}")
        await asyncio.sleep(0.1)


async def active(registry: Registry) -> dict[str, list[str]]:
    """unit -> machines reporting it active/activating."""
    out: dict[str, list[str]] = {}
    for st in await registry.unit_states():
        if st.active_state in ("active", "activating", "deactivating"):
            out.setdefault(st.unit, []).append(st.machine)
    return out


async def machines_up(registry: Registry, n: int) -> bool:
    return len(await registry.machines()) == n


def write_unit(root: Path, name: str, body: str) -> Path:
    path = root / name
    path.write_text(body)
    return path


CODE_IT = """\
[Unit]
Description=code.it %n

[Service]
Environment=ETCDCTL_API=3 ETCDCTL_ENDPOINTS={endpoint}
ExecStartPre=-{docker} rm -f %p-{run}
ExecStart={docker} run --rm --name %p-{run} {image} \
    /bin/sh -c 'echo code.it up; exec /bin/sleep 1000'
ExecStartPost={etcdctl} put /domains/code.it/%m running
ExecStop={docker} stop -t 1 %p-{run}
ExecStopPost={etcdctl} del /domains/code.it/%m

[X-Fleet]
X-Conflicts=code.it.*.service
"""


@pytest.fixture(scope="module")
def tiny_image(docker_host: str) -> Iterator[str]:
    tag = f"shipmate-test/fleet-tiny:{RUN}"
    build_tiny_image(tag)
    yield tag
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


def etcd_keys(etcd: EtcdServer, prefix: str) -> list[str]:
    out = subprocess.run(["etcdctl", "--endpoints", etcd.endpoint, "get", "--prefix",
                          "--keys-only", prefix], capture_output=True, text=True,
                         env={**os.environ, "ETCDCTL_API": "3"}).stdout
    return [line for line in out.splitlines() if line]


async def test_walkthrough_code_it(cluster: Cluster, registry: Registry, etcd: EtcdServer,
                                   tiny_image: str) -> None:
    docker, etcdctl = shutil.which("docker"), shutil.which("etcdctl")
    units = [write_unit(cluster.root, f"code.it.{i}.service", CODE_IT.format(
        endpoint=etcd.endpoint, docker=docker, etcdctl=etcdctl, image=tiny_image, run=RUN))
        for i in (1, 2, 3)]
    m0, m1 = cluster.add(), cluster.add()
    await until(lambda: machines_up(registry, 2), what="two machines")
    m0.fleet("start", "--no-block", *[u.name for u in units])
    await until(lambda: _count_active(registry, 2), what="two code.it units running")
    await asyncio.sleep(2)  # the third waits: no machine without a code.it unit
    running = await active(registry)
    assert len(running) == 2 and sorted(m for ms in running.values() for m in ms) == sorted(
        [m0.id, m1.id])
    files = m0.fleet("list-unit-files", "--no-legend").stdout.splitlines()
    waiting = [line for line in files if line.split()[3] == "inactive"]
    assert len(waiting) == 1 and waiting[0].split()[2] == "launched"
    assert waiting[0].split()[4] == "-"

    m2 = cluster.add()
    await until(lambda: _count_active(registry, 3), what="third unit on the third machine")
    listing = m0.fleet("list-units").stdout.splitlines()
    assert listing[0].split() == ["UNIT", "MACHINE", "ACTIVE", "SUB"]
    rows = [line.split() for line in listing[1:]]
    assert sorted(r[0] for r in rows) == [u.name for u in units]
    assert sorted(r[1] for r in rows) == sorted(
        f"{m.id[:8]}.../{m.ip}" for m in (m0, m1, m2))
    assert all(r[2:] == ["active", "running"] for r in rows)
    await until(lambda: len(etcd_keys(etcd, "/domains/code.it/")) == 3, what="registrations")
    assert sorted(etcd_keys(etcd, "/domains/code.it/")) == sorted(
        f"/domains/code.it/{m.id}" for m in (m0, m1, m2))
    await until(lambda: {f"code.it.{i}-{RUN}" for i in (1, 2, 3)} <= set(docker_names("-f",
                "status=running")),
                what="three code.it containers")

    m0.fleet("destroy", *[u.name for u in units])
    await until(lambda: etcd_keys(etcd, "/domains/code.it/") == [], what="ExecStopPost ran")
    await until(lambda: not {f"code.it.{i}-{RUN}" for i in (1, 2, 3)} & set(docker_names()),
                what="containers gone")


def docker_names(*filters: str) -> list[str]:
    return subprocess.run(["docker", "ps", "-a", *filters, "--format", "{{.Names}}"],
                          capture_output=True, text=True).stdout.split()


async def _count_active(registry: Registry, n: int) -> bool:
    states = [s for s in await registry.unit_states() if s.active_state == "active"]
    return len(states) == n


FIVE = """\
[Service]
ExecStart=/bin/sleep 1000

[X-Fleet]
Conflicts=five.*.service
"""


async def test_five_conflicting_units_on_three_machines(cluster: Cluster,
                                                        registry: Registry) -> None:
    units = [write_unit(cluster.root, f"five.{i}.service", FIVE) for i in range(5)]
    ms = [cluster.add() for _ in range(3)]
    await until(lambda: machines_up(registry, 3), what="three machines")
    ms[0].fleet("start", "--no-block", *[u.name for u in units])
    await until(lambda: _count_active(registry, 3), what="three running")
    await asyncio.sleep(1.5)
    running = await active(registry)
    assert len(running) == 3
    assert sorted(m for v in running.values() for m in v) == sorted(m.id for m in ms)

    # journal and status of a unit on another machine: what its agent published
    unit, (where,) = next((u, m) for u, m in sorted(running.items()) if m != [ms[0].id])
    await until(lambda: f"Started {unit}" in ms[0].fleet("journal", unit, check=False).stdout,
                what="published journal")
    status = ms[0].fleet("status", unit).stdout
    assert f"on {where}" in status and "Active: active (running)" in status

    victim = sorted(running)[0]
    ms[1].fleet("destroy", victim)
    await until(lambda: _replaced(registry, victim), what="a waiting unit took its place")
    running = await active(registry)
    assert victim not in running and len(running) == 3
    assert len({m for v in running.values() for m in v}) == 3


async def _replaced(registry: Registry, victim: str) -> bool:
    running = await active(registry)
    return victim not in running and len(running) == 3


async def test_sigkilled_machine_units_move_within_5s_never_on_two(
        cluster: Cluster, registry: Registry) -> None:
    units = [write_unit(cluster.root, f"move.{i}.service", FIVE.replace("five", "move"))
             for i in range(2)]
    ms = [cluster.add() for _ in range(3)]
    await until(lambda: machines_up(registry, 3), what="three machines")
    ms[0].fleet("start", *[u.name for u in units])
    await until(lambda: _count_active(registry, 2), what="two running")
    running = await active(registry)
    unit, (where,) = sorted(running.items())[0]
    victim = next(m for m in ms if m.id == where)

    victim.signal(signal.SIGKILL)
    killed = time.monotonic()
    moved_after = None
    while time.monotonic() - killed < 15:
        running = await active(registry)
        assert all(len(v) == 1 for v in running.values()), running  # never on two
        if unit in running and running[unit] != [victim.id] and \
                (await _states(registry, unit)) == [("active", "running")]:
            moved_after = time.monotonic() - killed
            break
        await asyncio.sleep(0.05)
    assert moved_after is not None and moved_after <= 5.0, moved_after
    assert victim.id not in await registry.machines()


async def _states(registry: Registry, unit: str) -> list[tuple[str, str]]:
    return [(s.active_state, s.sub_state) for s in await registry.unit_states()
            if s.unit == unit]


async def test_restarted_daemon_adopts_its_units(cluster: Cluster, registry: Registry,
                                                 tiny_image: str) -> None:
    write_unit(cluster.root, "keep.service", "[Service]\nExecStart=/bin/sleep 1000\n")
    write_unit(cluster.root, "box.container",
               f"[Container]\nImage={tiny_image}\n"
               "Exec=/bin/sh -c 'trap \"exit 0\" TERM; /bin/sleep 1000 & wait'\n"
               f"ContainerName=box-{RUN}\n")
    m = cluster.add()
    await until(lambda: machines_up(registry, 1), what="the machine")
    m.fleet("start", "keep.service", "box.container")
    before = json.loads(m.fleet("status", "keep.service", "--format", "json").stdout)
    pid = before["machines"][0]["detail"]["main_pid"]
    box = json.loads(m.fleet("status", "box.container", "--format", "json").stdout)
    cid = box["machines"][0]["detail"]["container_id"]
    assert pid and cid

    m.signal(signal.SIGTERM)
    m.start()
    await until(lambda: _adopted(m), what="daemon back")
    after = json.loads(m.fleet("status", "keep.service", "--format", "json").stdout)
    assert after["machines"][0]["detail"]["main_pid"] == pid
    box2 = json.loads(m.fleet("status", "box.container", "--format", "json").stdout)
    assert box2["machines"][0]["detail"]["container_id"] == cid
    assert "adopted running units" in (m.dir / "daemon.log").read_text()
    assert f"Adopted keep.service (main PID {pid})" in m.fleet(
        "journal", "--lines", "3", "keep.service").stdout
    m.fleet("destroy", "keep.service", "box.container")


def _adopted(m: Machine) -> bool:
    res = m.fleet("list-units", "--no-legend", check=False)
    return res.returncode == 0 and res.stdout.count("active") == 2


RESERVING = "[Service]\nExecStart=/bin/sleep 1000\n\n[X-Fleet]\nReserveMemory={}\n"


def sized(cluster: Cluster, memory: str) -> Machine:
    """A machine that says it has ``memory`` for units (a simulated size)."""
    m = Machine(len(cluster.machines), cluster.root, cluster.etcd.endpoint)
    m.env["SHIPMATE_MACHINE_MEMORY"] = memory
    cluster.machines.append(m)
    m.start()
    return m


async def test_a_unit_reserving_more_than_any_machine_has_waits_with_the_reason(
        cluster: Cluster, registry: Registry) -> None:
    small = write_unit(cluster.root, "small.service", RESERVING.format("512m"))
    big = write_unit(cluster.root, "big.service", RESERVING.format("3g"))
    m0, m1 = sized(cluster, "1g"), sized(cluster, "2g")
    await until(lambda: machines_up(registry, 2), what="two machines")
    m0.fleet("start", small.name)  # fewest units, ties by ID: on m0, 512 MiB left there
    res = m0.fleet("start", "--block-attempts", "4", big.name, check=False)
    reason = f"needs 3 GiB memory; the largest free is 2 GiB on {m1.id}"
    assert res.returncode == 1 and reason in res.stderr
    assert f"  Waiting: {reason}" in m0.fleet("status", big.name).stdout
    listing = m1.fleet("list-units", "--full").stdout.splitlines()
    assert listing[0].split() == ["UNIT", "MACHINE", "ACTIVE", "SUB", "REASON"]
    row = next(line for line in listing if line.startswith(big.name))
    assert row.split(None, 4) == [big.name, "-", "inactive", "waiting", reason]
    assert "big.service" not in await active(registry)

    m2 = sized(cluster, "4g")  # a machine with room joins: the unit runs there
    await until(lambda: _runs_on(registry, big.name, m2.id), what="big.service on the 4g one")
    assert "Waiting:" not in m0.fleet("status", big.name).stdout
    assert "REASON" not in m0.fleet("list-units").stdout


async def _runs_on(registry: Registry, unit: str, machine: str) -> bool:
    return (await active(registry)).get(unit) == [machine]
