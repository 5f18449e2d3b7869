"""A Postgres service outlives a SIGKILL of the daemon that runs it.

Its own daemon (no router, SSH or cache: a service needs none of them), so the test knows
the daemon's PID and kills exactly it. While a client commits one insert after another, the
daemon is SIGKILLed and started again: the server never stops (the container is the same,
never restarted), every committed row is there, and the restarted daemon has adopted the
service: it reports it running, and when the server is then killed it starts it again.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.integration.daemon_helpers import shipmate
from tests.integration.paas_helpers import run, unique
from tests.integration.service_helpers import Daemon, daemon, forget

pytestmark = pytest.mark.integration
__all__ = ["daemon"]  # the fixture, imported for pytest


def _container(name: str) -> dict[str, object]:
    res = run(["docker", "inspect", name])
    assert res.returncode == 0, res.stderr
    data: dict[str, object] = json.loads(res.stdout)[0]
    return data


def _started(name: str) -> tuple[str, str]:
    """(container ID, when it last started)."""
    info = _container(name)
    state = info["State"]
    assert isinstance(state, dict) and state["Running"], state
    return str(info["Id"]), str(state["StartedAt"])


def _wait_running(d: Daemon, name: str, other_than: tuple[str, str] | None,
                  timeout: float = 120) -> tuple[str, str]:
    """Wait until the service reports running in a container other than ``other_than``."""
    deadline = time.monotonic() + timeout
    while True:
        status = shipmate(d.env, "postgres:info", name, "--status").stdout.strip()
        try:
            now = _started(f"shipmate-postgres-{name}")
        except AssertionError:
            now = None
        if status == "running" and now is not None and now != other_than:
            return now
        assert time.monotonic() < deadline, f"status {status!r}, container {now}"
        time.sleep(0.5)


def test_committed_rows_and_the_service_survive_a_sigkill_of_the_daemon(
        daemon: Daemon) -> None:
    name = unique("dkill")
    host, client_name = f"shipmate-postgres-{name}", f"{host_prefix()}-{name}"
    try:
        daemon.ok("postgres:create", name, timeout=900)
        daemon.ok("postgres:connect", name, input="CREATE TABLE t (id int PRIMARY KEY);")
        password = daemon.ok("postgres:info", name, "--dsn").split(":")[2].split("@")[0]
        before = _started(host)
        # One committed insert after another; the loop stops at the first failure.
        loop = ("i=0; while [ $i -lt 100000 ]; do i=$((i+1)); psql -qAt -h " + host
                + " -U postgres -d " + name.replace("-", "_")
                + " -c \"INSERT INTO t VALUES ($i)\" || exit 3; echo $i; done")
        client = subprocess.Popen(["docker", "run", "--rm", "--name", client_name, "--network",
                                   f"shipmate-svc-postgres-{name}", "-e",
                                   f"PGPASSWORD={password}", "shipmate/postgres:15", "sh", "-c",
                                   loop], stdout=subprocess.PIPE, text=True)
        assert client.stdout is not None
        acked = [int(client.stdout.readline()) for _ in range(20)]
        daemon.kill()  # the daemon dies mid-stream ...
        acked += [int(client.stdout.readline()) for _ in range(20)]  # ... the server does not
        daemon.start()
        assert _wait_running(daemon, name, None) == before  # adopted: same, never restarted
        acked += [int(client.stdout.readline()) for _ in range(20)]
        run(["docker", "rm", "-f", client_name])
        # the rest through the same buffered reader: communicate(timeout=) would read the
        # pipe underneath it and lose the lines readline() had buffered already
        acked += [int(x) for x in client.stdout.read().split()]
        client.wait(timeout=60)
        assert client.returncode != 3, "an insert failed while the daemon was down"
        assert acked == list(range(1, len(acked) + 1))
        rows = daemon.ok("postgres:connect", name,
                         input="\\pset tuples_only on\nSELECT id FROM t ORDER BY id;")
        assert set(acked) <= {int(x) for x in rows.split()}
        # The restarted daemon supervises it: a killed server is started again, rows intact.
        pid = _container(host)["State"]["Pid"]  # type: ignore[index]
        assert run(["kill", "-9", str(pid)]).returncode == 0
        _wait_running(daemon, name, before)
        rows = daemon.ok("postgres:connect", name,
                         input="\\pset tuples_only on\nSELECT id FROM t ORDER BY id;")
        assert set(acked) <= {int(x) for x in rows.split()}
    finally:
        run(["docker", "rm", "-f", client_name])
        forget(daemon, "postgres", name)


def host_prefix() -> str:
    """Name prefix of the test's client containers."""
    return "shipmate-test-client"
