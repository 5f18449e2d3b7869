"""Scheduled tasks on one machine: an app.json `cron` entry runs in a one-off container of
the current release every minute and `cron:list` shows its result; `cron:run` runs one now;
suspend/resume; a bad schedule rejects the push, naming the line, and keeps the release."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.paas_helpers import (
    PaasDaemon,
    commit,
    run,
    running_daemon,
    unique,
    work_tree,
)

pytestmark = pytest.mark.integration

APP_JSON: dict[str, Any] = {
    "cron": [
        {"command": "echo tick $SHIPMATE_CRON_SLOT as $DYNO", "schedule": "* * * * *"},
        {"command": "report", "schedule": "@daily"},  # a Procfile type: runs its command
    ],
}
FILES = {
    "Procfile": "web: python3 -m http.server $PORT\n"
                "report: python3 -c \"print('report of', __import__('os').environ['GREETING'])\"\n",
    "app.json": json.dumps(APP_JSON, indent=2),
}


@pytest.fixture(scope="module")
def paas() -> Iterator[PaasDaemon]:
    with running_daemon("shipmate-cron-", cache=False) as daemon:
        yield daemon


def _tree(base: Path) -> Path:
    src = base / "src"
    src.mkdir()
    for name, text in FILES.items():
        (src / name).write_text(text)
    return work_tree(base / "tree", src)


def _rows(paas: PaasDaemon, app: str) -> dict[str, dict[str, Any]]:
    rows = json.loads(paas.ok("cron:list", app, "--format", "json"))
    return {r["command"]: r for r in rows}


def test_a_cron_entry_runs_every_minute_and_cron_list_shows_it(paas: PaasDaemon,
                                                               tmp_path: Path) -> None:
    tree, app = _tree(tmp_path), unique("cron")
    res = paas.push(tree, app)
    assert res.returncode == 0, res.stderr[-3000:]
    paas.ok("config:set", app, "GREETING=from config")
    rows = _rows(paas, app)
    tick, report = rows[APP_JSON["cron"][0]["command"]], rows["report"]
    assert tick["schedule"] == "* * * * *" and report["schedule"] == "@daily"
    # (a minute may have turned during the push: the entry may have run once already)
    assert tick["next_run"].endswith(":00Z")
    # cron:run: now, once, with the output and the exit code of the task
    ran = paas.cli("cron:run", app, report["id"])
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "report of from config" in ran.stdout
    # the scheduler leader fires the every-minute entry at the next minute
    deadline = time.monotonic() + 90
    while (last := _rows(paas, app)[tick["command"]]["last_run"]) is None \
            or last["exit_code"] is None:
        assert time.monotonic() < deadline, _rows(paas, app)
        time.sleep(1)
    assert last["trigger"] == "schedule" and last["exit_code"] == 0
    assert last["output"] == [f"tick {last['slot']} as run.1"]
    assert last["started"] - _epoch(last["slot"]) < 5  # on time, not at a 5 s poll
    leftovers = run(["docker", "ps", "-aq", "--filter", f"label=shipmate.one-off={app}"])
    assert leftovers.stdout.split() == []  # each run's container is removed after it
    text = paas.ok("cron:list", app)
    assert f"=====> {app} cron tasks" in text
    line = next(line for line in text.splitlines() if line.startswith(tick["id"]))
    assert f"{last['slot']} exit 0 in" in line
    assert "manual exit 0 in" in next(line for line in text.splitlines()
                                      if line.startswith(report["id"]))
    # suspend / resume
    assert "Suspended cron task" in paas.ok("cron:suspend", app, tick["id"])
    assert "suspended" in next(line for line in paas.ok("cron:list", app).splitlines()
                               if line.startswith(tick["id"]))
    assert "Resumed cron task" in paas.ok("cron:resume", app, tick["id"])
    assert _rows(paas, app)[tick["command"]]["next_run"]
    # over SSH too
    over_ssh = paas.ssh("cron:list", app, "--format", "json")
    assert over_ssh.returncode == 0 and tick["id"] in over_ssh.stdout
    missing = paas.cli("cron:run", app, "nosuchid")
    assert missing.returncode == 1 and f"No cron task nosuchid for {app}" in missing.stderr


def test_a_bad_schedule_rejects_the_push_with_its_line(paas: PaasDaemon,
                                                       tmp_path: Path) -> None:
    tree, app = _tree(tmp_path), unique("cronbad")
    res = paas.push(tree, app)
    assert res.returncode == 0, res.stderr[-3000:]
    bad = json.loads(FILES["app.json"])
    bad["cron"][1]["schedule"] = "0 25 * * *"
    commit(tree, "a bad hour", {"app.json": json.dumps(bad, indent=2)})
    res = paas.push(tree, app)
    assert res.returncode != 0
    assert "app.json line 9, cron entry 2: Cron schedule '0 25 * * *': hour '25' is " \
           "outside 0-23" in res.stderr, res.stderr[-2000:]
    assert "Starting web.1" not in res.stderr  # refused before anything was deployed
    releases = json.loads(paas.ok("releases", app, "--format", "json"))
    assert [(r["version"], r["current"]) for r in releases] == [(1, True)]
    assert len(json.loads(paas.ok("cron:list", app, "--format", "json"))) == 2
    status, _ = paas.get(app)
    assert status == 200


def _epoch(iso: str) -> float:
    return time.mktime(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
