"""Apps written for Dokku deploy unchanged: app.json with comments, `formation` (web: 0),
`scripts.dokku.predeploy`/`postdeploy`, ignored fields, and a Procfile-only app on the image
with the runtime its commands name.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.integration.paas_helpers import (
    PaasDaemon,
    commit,
    head,
    inspect_app_containers,
    paas,
    run,
    unique,
    work_tree,
)

pytestmark = pytest.mark.integration
__all__ = ["paas"]  # the fixture, imported for pytest

WORKER_APP = {
    "Procfile": "web: python3 -m http.server $PORT\nworker: python3 -u worker.py\n",
    "worker.py": "import time\nprint('worker alive', flush=True)\n"
                 "while True:\n    time.sleep(60)\n",
    "app.json": """{
  // written for Dokku: comments, a formation with no web, fields Shipmate does not use
  "name": "worker-only",
  "formation": {
    "web": {"quantity": 0},   /* no web process, so no route */
    "worker": {"quantity": 1}
  },
  "addons": ["dokku-postgres"],
  "buildpacks": [{"url": "heroku/python"}]
}
""",
}


def _new_tree(base: Path, files: dict[str, str]) -> Path:
    src = base / "src"
    src.mkdir()
    for name, text in files.items():
        (src / name).write_text(text)
    return work_tree(base / "tree", src)


def test_formation_with_web_0_runs_exactly_one_worker_and_no_web(
        paas: PaasDaemon, tmp_path: Path) -> None:
    tree, app = _new_tree(tmp_path, WORKER_APP), unique("worker")
    res = paas.push(tree, app)
    out = res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "-----> Procfile app detected" in out
    assert out.count("app.json: ignoring addons, buildpacks (not used by Shipmate)") == 1
    assert "(no web process: the app has no route)" in out
    report = json.loads(paas.ok("ps:report", app, "--format", "json"))
    assert [p["instance"] for p in report["processes"]] == ["worker.1"]
    (info,) = inspect_app_containers(app)
    labels = info["Config"]["Labels"]  # type: ignore[index]
    assert labels["shipmate.process"] == "worker"
    # python3 is there (the Procfile names it): the worker printed its line.
    deadline = time.monotonic() + 20
    while "worker alive" not in paas.ok("logs", app, "-n", "20"):
        assert time.monotonic() < deadline, paas.ok("logs", app, "-n", "20")
        time.sleep(0.3)
    assert paas.upstream(app) == []
    status, _ = paas.get(app)
    assert status == 404
    # Scaling web up later gives it its route; the worker stays.
    paas.ok("ps:scale", app, "web=1")
    paas.wait_upstream(app, 1)
    status, _ = paas.get(app)
    assert status == 200
    running = paas.wait_containers(app, 2)
    assert sorted(c["Config"]["Labels"]["shipmate.process"]  # type: ignore[index]
                  for c in running) == ["web", "worker"]

def test_failing_predeploy_rejects_the_push_and_the_old_release_keeps_answering(
        paas: PaasDaemon, tmp_path: Path) -> None:
    tree, app = work_tree(tmp_path / "tree"), unique("predeploy")
    app_json = json.loads((tree / "app.json").read_text())
    app_json["scripts"] = {"dokku": {"predeploy": "echo predeploy of $GIT_REV",
                                     "postdeploy": "echo postdeploy done"}}
    good = commit(tree, "dokku scripts", {"app.json": json.dumps(app_json, indent=2)})
    res = paas.push(tree, app)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stderr
    assert f"predeploy of {good}" in out and "postdeploy done" in out
    assert out.index("Running predeploy command") < out.index("Starting web.1") \
        < out.index("Switched traffic") < out.index("Running postdeploy command")
    paas.wait_page(app, good[:7])
    app_json["scripts"]["dokku"]["predeploy"] = "echo checking && exit 4"
    commit(tree, "failing predeploy", {"app.json": "// a comment Dokku allows\n"
                                       + json.dumps(app_json, indent=2)})
    res = paas.push(tree, app)
    assert res.returncode != 0
    assert "pre-receive hook declined" in res.stderr
    assert "predeploy command failed with exit code 4" in res.stderr
    assert "Starting web.1" not in res.stderr
    status, body = paas.get(app)
    assert status == 200 and good[:7] in body
    assert paas.ls_remote(app) == {"refs/heads/main": good}
    releases = json.loads(paas.ok("releases", app, "--format", "json"))
    assert [(r["version"], r["current"]) for r in releases] == [(1, True)]
    assert len(inspect_app_containers(app)) == 1
    assert head(tree) != good
    assert run(["git", "status", "--short"], cwd=tree).stdout == ""
