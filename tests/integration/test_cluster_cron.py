"""Scheduled tasks on a real three-machine cluster (`shipmate cluster up`): a `* * * * *`
app.json cron entry runs once a minute, on the scheduler leader; the leader's machine is
killed mid-minute and the next leader goes on with the next minute: no minute is skipped and
none runs twice. The runs' log is their records (each run prints its scheduled minute), read
back with `cron:list --format json` from a machine that lives on."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster_helpers import ClusterCli, wait_for
from tests.integration.paas_helpers import GIT_ENV, make_key

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAME = "smcron"  # smtest, smpaas and smbench are the other clusters' names
SUBNET = "172.30.23.0/24"
STATE = Path("/tmp/shipmate-cluster-tests")  # shared with the other cluster tests (wheelhouse)
NODES = ("node-1", "node-2", "node-3")
APP = "ticker"
COMMAND = "echo tick $SHIPMATE_CRON_SLOT"
FILES = {
    "Procfile": "web: python3 -m http.server $PORT\n",
    "app.json": json.dumps({"cron": [{"command": COMMAND, "schedule": "* * * * *"}]}),
}


@pytest.fixture(scope="module")
def cli() -> Iterator[ClusterCli]:
    if subprocess.run(["docker", "image", "inspect", "shipmate/python:3.11"],
                      capture_output=True).returncode != 0:
        pytest.skip("shipmate/python:3.11 is missing: run shipmate images:bootstrap")
    c = ClusterCli(NAME, SUBNET, STATE)
    c.cluster("down", check=False)
    started = time.monotonic()
    c.cluster("up", "--subnet", SUBNET, "--format", "json", timeout=1200)
    print(f"cluster up: {time.monotonic() - started:.1f} s")
    try:
        yield c
    finally:
        if not os.environ.get("SHIPMATE_TEST_KEEP_CLUSTER"):
            c.cluster("down", check=False, timeout=300)


def _push(cli: ClusterCli, tmp: Path, node: str) -> None:
    (tmp / "ssh").mkdir()
    key = make_key(tmp / "ssh")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPMATE_")}
    env["SHIPMATE_SOCKET"] = str(STATE / "cluster" / NAME / node / "shipmate.sock")
    added = subprocess.run([sys.executable, "-m", "shipmate.cli.main", "ssh-keys:add", "tester",
                            "-"], input=key.with_suffix(".pub").read_text(), env=env,
                           capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stdout + added.stderr
    tree = tmp / "app"
    tree.mkdir()
    for name, text in FILES.items():
        (tree / name).write_text(text)
    genv = {**os.environ, **GIT_ENV}
    for argv in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                 ["git", "commit", "-q", "-m", "ticker"]):
        subprocess.run(argv, cwd=tree, env=genv, check=True, capture_output=True)
    ssh = (f"ssh -i {key} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no "
           "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes")
    remote = f"ssh://shipmate@{cli.address(node)}:2222/{APP}"
    pushed = subprocess.run(["git", "push", remote, "HEAD:refs/heads/main"], cwd=tree,
                            env={**genv, "GIT_SSH_COMMAND": ssh}, capture_output=True,
                            text=True, timeout=600)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr


def _runs(cli: ClusterCli, node: str) -> list[dict[str, Any]]:
    """The entry's recorded runs (oldest first), finished ones only."""
    (row,) = json.loads(cli.run("cron:list", APP, "--format", "json", node=node).stdout)
    return [r for r in row["runs"] if r["exit_code"] is not None or r["error"]]


def _minute(iso: str) -> dt.datetime:
    return dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def test_killing_the_leader_mid_minute_neither_skips_nor_doubles_a_run(
        cli: ClusterCli, tmp_path: Path) -> None:
    _push(cli, tmp_path, "node-1")
    # Every machine gets the image (a new leader needs it to run the task at once).
    cli.run("ps:scale", APP, "web=3", node="node-2", timeout=300)
    first = wait_for("the first scheduled run", lambda: _runs(cli, "node-2"), 100, 1.0)
    leader = first[0]["machine"]
    survivor = next(n for n in NODES if n != leader)
    # Mid-minute, after this minute's run has ended: kill the leader's machine.
    now = time.time()
    time.sleep((20 - now % 60) % 60)
    this_minute = dt.datetime.fromtimestamp(time.time() // 60 * 60, dt.UTC)
    wait_for("this minute's run", lambda: any(
        _minute(r["slot"]) == this_minute for r in _runs(cli, survivor)), 15, 1.0)
    cli.cluster("kill", leader)
    killed_at = time.time()
    # Two more minutes, run by the next leader.
    wait_for("two runs after the kill", lambda: len(
        [r for r in _runs(cli, survivor) if r["started"] > killed_at]) >= 2, 150, 2.0)
    runs = _runs(cli, survivor)
    print(f"killed {leader} at {killed_at % 60:.1f} s past the minute; runs:",
          [(r["slot"][11:16], r["machine"], round(r["started"] % 60, 1)) for r in runs])
    slots = [_minute(r["slot"]) for r in runs]
    # the log: one run per minute, every minute, none twice
    assert slots == [slots[0] + dt.timedelta(minutes=i) for i in range(len(slots))], runs
    assert all(r["exit_code"] == 0 and r["output"] == [f"tick {r['slot']}"] for r in runs), runs
    before = [r for r in runs if r["started"] < killed_at]
    after = [r for r in runs if r["started"] > killed_at]
    assert {r["machine"] for r in before} == {leader}
    assert len(after) >= 2 and leader not in {r["machine"] for r in after}, runs
    assert _minute(after[0]["slot"]) == this_minute + dt.timedelta(minutes=1)
    # the next leader was in place before the next minute: its first run started on time
    assert after[0]["started"] - _minute(after[0]["slot"]).timestamp() < 10, after[0]
