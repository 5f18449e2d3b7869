"""The process supervisor with real processes: start sequence, environment, stop sequence,
Restart= with backoff, and adoption by a second supervisor over the same state dir."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from shipmate import metrics
from shipmate.agent import process
from shipmate.agent.service import ServiceConfig, service_config
from shipmate.agent.supervisor import Supervisor
from shipmate.spec.unitfile import parse

pytestmark = pytest.mark.integration


def unit(name: str, body: str) -> ServiceConfig:
    return service_config(parse("[Service]\n" + body), name, hostname="testhost")


async def until(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


@pytest.fixture
async def sup(tmp_path: Path) -> AsyncIterator[Supervisor]:
    s = Supervisor(tmp_path / "state")
    yield s
    await s.stop_all()
    await s.close()


def phase(s: Supervisor, name: str) -> str:
    st = s.status(name)
    return st.phase if st else "-"


async def test_start_sequence_environment_and_specifiers(sup: Supervisor, tmp_path: Path) -> None:
    out = tmp_path / "order"
    envfile = tmp_path / "env"
    envfile.write_text('# comment\nFROMFILE="from file"\nFOO=overridden\n')
    cfg = unit("web@7.service", f"""
Environment="FOO=hello world" BAR=2
EnvironmentFile={envfile}
EnvironmentFile=-/nonexistent/env
ExecStartPre=/bin/sh -c 'echo pre1 >> {out}'
ExecStartPre=-/bin/false
ExecStartPre=/bin/sh -c 'echo pre2 %i %p %H >> {out}'
ExecStart=/bin/sh -c 'echo "main $FOO $BAR $FROMFILE"; exec sleep 1000'
ExecStartPost=/bin/sh -c 'echo post $MAINPID >> {out}'
""")
    await sup.start(cfg)
    await until(lambda: phase(sup, "web@7.service") == "running" and out.exists()
                and "post" in out.read_text())
    st = sup.status("web@7.service")
    assert st is not None and st.active == "active" and st.sub == "running"
    lines = out.read_text().splitlines()
    assert lines == ["pre1", "pre2 7 web testhost", f"post {st.main_pid}"]
    await until(lambda: any("main hello world 2 from file" in line
                            for line in sup.journal.tail("web@7.service", 50)))
    # its own session: the daemon's signals and groups do not reach it
    assert os.getsid(st.main_pid) == st.main_pid


async def test_stop_runs_execstop_then_kills_then_execstoppost(sup: Supervisor,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "stop"
    cfg = unit("s.service", f"""
ExecStart=/bin/sh -c 'trap "" TERM; while true; do sleep 0.1; done'
ExecStop=/bin/sh -c 'echo stop $MAINPID >> {out}'
ExecStopPost=/bin/sh -c 'echo stoppost >> {out}'
TimeoutStopSec=1
""")
    await sup.start(cfg)
    await until(lambda: phase(sup, "s.service") == "running")
    st = sup.status("s.service")
    assert st is not None
    pid = st.main_pid
    began = time.monotonic()
    await sup.stop("s.service")
    took = time.monotonic() - began
    assert out.read_text().splitlines() == [f"stop {pid}", "stoppost"]
    assert not process.alive(pid, process.start_time(pid) or -1)
    assert 0.9 <= took < 8, took  # SIGTERM ignored: SIGKILL after TimeoutStopSec
    assert sup.status("s.service") is None
    assert "State 'stop-sigterm' timed out" in "\n".join(sup.journal.tail("s.service", 20))


async def test_restart_always_after_kill_with_backoff(sup: Supervisor) -> None:
    cfg = unit("r.service", "ExecStart=/bin/sleep 1000\nRestart=always\nRestartSec=0.3\n")
    counted = metrics.AGENT_UNIT_RESTARTS.value(kind="service")
    await sup.start(cfg)
    await until(lambda: phase(sup, "r.service") == "running")
    pids = []
    for _ in range(2):
        st = sup.status("r.service")
        assert st is not None
        pids.append(st.main_pid)
        killed = time.monotonic()
        os.kill(st.main_pid, signal.SIGKILL)
        await until(lambda p=st.main_pid: (s := sup.status("r.service")) is not None
                    and s.phase == "running" and s.main_pid != p)
        pids.append(time.monotonic() - killed)
    st = sup.status("r.service")
    assert st is not None and st.restarts == 2 and st.main_pid != pids[0]
    assert metrics.AGENT_UNIT_RESTARTS.value(kind="service") == counted + 2
    first_delay, second_delay = pids[1], pids[3]
    assert first_delay >= 0.3 and second_delay >= 0.6, (first_delay, second_delay)
    journal = "\n".join(sup.journal.tail("r.service", 50))
    assert "Main process exited, code=killed, signal=SIGKILL" in journal
    assert "Scheduled restart job in 0.3s" in journal and "in 0.6s" in journal


async def test_restart_on_failure_only_on_failure(sup: Supervisor) -> None:
    await sup.start(unit("ok.service", "ExecStart=/bin/true\nRestart=on-failure\n"))
    await sup.start(unit("bad.service",
                         "ExecStart=/bin/sh -c 'exit 3'\nRestart=on-failure\nRestartSec=0.1\n"))
    await until(lambda: phase(sup, "ok.service") == "dead")
    await until(lambda: (s := sup.status("bad.service")) is not None and s.restarts >= 2)
    st = sup.status("ok.service")
    assert st is not None and st.restarts == 0 and st.result == "code=exited, status=0"


async def test_failed_start_pre_fails_the_unit_and_runs_stop_post(sup: Supervisor,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "post"
    await sup.start(unit("f.service", f"""
ExecStartPre=/bin/sh -c 'exit 7'
ExecStart=/bin/sleep 1000
ExecStopPost=/bin/sh -c 'echo cleaned >> {out}'
"""))
    await until(lambda: phase(sup, "f.service") == "failed")
    st = sup.status("f.service")
    assert st is not None and (st.active, st.sub) == ("failed", "failed")
    assert st.result == "code=exited, status=7" and st.main_pid == 0
    assert out.read_text() == "cleaned\n"


async def test_missing_program_fails_with_203(sup: Supervisor) -> None:
    await sup.start(unit("m.service", "ExecStart=/nonexistent/prog\n"))
    await until(lambda: phase(sup, "m.service") == "failed")
    st = sup.status("m.service")
    assert st is not None and st.result == "code=exited, status=203"


async def test_restarted_supervisor_adopts_the_same_pid(tmp_path: Path) -> None:
    state = tmp_path / "state"
    cfg = unit("a.service", "ExecStart=/bin/sleep 1000\nRestart=always\nRestartSec=0.1\n")
    first = Supervisor(state)
    await first.start(cfg)
    await until(lambda: phase(first, "a.service") == "running")
    st = first.status("a.service")
    assert st is not None
    pid = st.main_pid
    await first.close()  # the daemon goes away without stopping its units
    assert process.start_time(pid) is not None

    second = Supervisor(state)
    try:
        assert await second.open() == ["a.service"]
        st2 = second.status("a.service")
        assert st2 is not None and st2.main_pid == pid and st2.phase == "running"
        await second.start(cfg)  # same config: nothing to do
        st2 = second.status("a.service")
        assert st2 is not None and st2.main_pid == pid
        # an adopted process is watched: killing it restarts the unit
        os.kill(pid, signal.SIGKILL)
        await until(lambda: (s := second.status("a.service")) is not None
                    and s.phase == "running" and s.main_pid != pid)
        assert "Adopted a.service" in "\n".join(second.journal.tail("a.service", 20))
    finally:
        await second.stop_all()
        await second.close()
    assert process.start_time(pid) is None  # gone (or a zombie of the test process)


async def test_changed_config_restarts_the_unit(sup: Supervisor) -> None:
    await sup.start(unit("c.service", "ExecStart=/bin/sleep 1000\n"))
    await until(lambda: phase(sup, "c.service") == "running")
    st = sup.status("c.service")
    assert st is not None
    await sup.start(unit("c.service", "ExecStart=/bin/sleep 2000\n"))
    await until(lambda: phase(sup, "c.service") == "running")
    st2 = sup.status("c.service")
    assert st2 is not None and st2.main_pid != st.main_pid
    assert process.start_time(st.main_pid) is None
