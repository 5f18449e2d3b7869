"""Dokku's everyday commands for real: `resource:limit` reaches `docker inspect`;
`git:load-image` (a `docker save` stream over SSH) and `git:from-image` make releases that
`releases:rollback` goes back from; `ps:rebuild`, `ports:set`, `apps:clone`, `apps:rename`.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.paas_helpers import (
    PaasDaemon,
    container_env,
    head,
    paas,
    run,
    unique,
    work_tree,
)

pytestmark = pytest.mark.integration
__all__ = ["paas"]  # the fixture, imported for pytest

IMAGE_APP = {
    "Dockerfile": "FROM shipmate/python:3.11\nWORKDIR /app\nCOPY . .\n"
                  'CMD ["python3", "app.py"]\n',
    "app.py": "import http.server, os, sys\n"
              "class H(http.server.BaseHTTPRequestHandler):\n"
              "    def do_GET(self):\n"
              "        self.send_response(200); self.end_headers()\n"
              "        self.wfile.write(sys.argv[1].encode())\n"
              "http.server.HTTPServer(('0.0.0.0', int(os.environ['PORT'])), H)"
              ".serve_forever()\n",
    # The image's own Procfile and app.json are read as a push reads them.
    "Procfile": "web: python3 app.py \"built in CI: $IMAGE_TAG\"\n",
    "app.json": '{"scripts": {"dokku": {"predeploy": "echo predeploy in the image"}}}\n',
}


@pytest.fixture
def images(tmp_path: Path) -> Iterator[list[str]]:
    """Images a test builds ("CI" images), removed afterwards."""
    made: list[str] = []
    yield made
    if made:
        run(["docker", "rmi", "-f", *made], timeout=120)


def _build(tmp_path: Path, tag: str, made: list[str]) -> str:
    ctx = tmp_path / f"ctx-{uuid.uuid4().hex[:6]}"
    ctx.mkdir()
    for name, text in IMAGE_APP.items():
        (ctx / name).write_text(text.replace("$IMAGE_TAG", tag.rpartition(":")[2]))
    res = run(["docker", "build", "-q", "--network", "none", "-t", tag, str(ctx)], timeout=300)
    assert res.returncode == 0, res.stderr
    made.append(tag)
    return tag


def _releases(paas: PaasDaemon, app: str) -> list[tuple[int, str, bool]]:
    data = json.loads(paas.ok("releases", app, "--format", "json"))
    return [(r["version"], r["description"], r["current"]) for r in data]


def test_resource_limit_memory_shows_in_docker_inspect(paas: PaasDaemon,
                                                       tmp_path: Path) -> None:
    tree, app = work_tree(tmp_path / "tree"), unique("limits")
    assert paas.push(tree, app).returncode == 0
    paas.ok("resource:limit", app, "--memory", "64m", "--cpu", "0.5")
    paas.ok("resource:reserve", app, "--process-type", "web", "--memory", "32")
    report = paas.ok("resource:report", app)
    assert "Resource memory limit:" in report and "64m" in report
    assert "Resource web memory reserve:" in report and "32m" in report
    (info,) = paas.containers(app)
    assert info["HostConfig"]["Memory"] == 0  # type: ignore[index]  # until the next deploy
    paas.ok("ps:restart", app)
    (info,) = paas.wait_containers(app, 1)
    host = info["HostConfig"]
    assert isinstance(host, dict)
    assert (host["Memory"], host["NanoCpus"], host["MemoryReservation"]) == (
        64 * 2**20, 500_000_000, 32 * 2**20)
    paas.wait_page(app, head(tree)[:7])
    # `enter` runs a command in that running container (no terminal here: `docker exec -i`).
    entered = paas.cli("enter", app, "web.1", "sh", "-c", "echo $DYNO; cat /sys/fs/cgroup/"
                       "memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert entered.returncode == 0, entered.stderr
    assert entered.stdout.split() == ["web.1", str(64 * 2**20)]
    nothing = paas.cli("enter", app, "worker")
    assert nothing.returncode == 1 and "No running worker container" in nothing.stderr
    # Over SSH too; a bad value is refused with a clear line and changes nothing.
    bad = paas.ssh("resource:limit", app, "--memory", "lots")
    assert bad.returncode == 1 and "--memory 'lots' is not a size" in bad.stderr
    paas.ok("resource:limit-clear", app)
    paas.ok("ps:restart", app)
    (info,) = paas.wait_containers(app, 1)
    assert info["HostConfig"]["Memory"] == 0  # type: ignore[index]


def test_load_image_over_ssh_and_from_image_deploy_and_roll_back(
        paas: PaasDaemon, tmp_path: Path, images: list[str]) -> None:
    tree, app = work_tree(tmp_path / "tree"), unique("image")
    assert paas.push(tree, app).returncode == 0
    paas.wait_page(app, head(tree)[:7])
    one = _build(tmp_path, f"shipmate-test/ci-{app}:one", images)
    save = subprocess.Popen(["docker", "save", one], stdout=subprocess.PIPE)
    res = subprocess.run([*paas.ssh_command().split(), "-p", str(paas.ssh_port),
                          "shipmate@127.0.0.1", "git:load-image", app, one],
                         stdin=save.stdout, capture_output=True, text=True, timeout=600)
    assert save.wait() == 0
    assert res.returncode == 0, res.stdout + res.stderr
    assert "predeploy in the image" in res.stdout
    paas.wait_page(app, "built in CI: one")
    two = _build(tmp_path, f"shipmate-test/ci-{app}:two", images)
    out = paas.ok("git:from-image", app, two)
    assert "=====> Application deployed: v3" in out
    paas.wait_page(app, "built in CI: two")
    assert _releases(paas, app) == [(1, f"Deploy {head(tree)[:7]}", False),
                                    (2, f"Deploy image {one}", False),
                                    (3, f"Deploy image {two}", True)]
    paas.ok("releases:rollback", app, "v2")
    paas.wait_page(app, "built in CI: one")
    paas.ok("releases:rollback", app, "v1")
    paas.wait_page(app, head(tree)[:7])
    missing = paas.cli("git:from-image", app, "shipmate-test/no-such-image:x")
    assert missing.returncode == 1 and "No such image on this machine" in missing.stderr


def test_rebuild_ports_clone_and_rename(paas: PaasDaemon, tmp_path: Path) -> None:
    tree, app = work_tree(tmp_path / "tree"), unique("every")
    assert paas.push(tree, app).returncode == 0
    rev = head(tree)[:7]
    paas.ok("config:set", app, "GREETING=Hello again")
    rebuilt = paas.ok("ps:rebuild", app)
    assert "Node.js app detected" in rebuilt and "Application deployed: v3" in rebuilt
    paas.wait_page(app, "Hello again")
    # The web process listens where the mapping says.
    paas.ok("ports:set", app, "http:80:5050")
    (info,) = paas.wait_containers(app, 1)
    assert container_env(info)["PORT"] == "5050"
    paas.wait_page(app, rev)
    assert paas.ok("ports:report", app, "--ports-map") == "http:80:5050\n"
    bad = paas.cli("ports:add", app, "https:443:5050")
    assert bad.returncode == 1 and "scheme 'https' is not supported" in bad.stderr
    # A clone runs the same release under its own name, with the config and ports.
    copy = unique("copy")
    paas.apps.add(copy)
    paas.ok("apps:clone", app, copy)
    paas.wait_page(copy, "Hello again")
    assert paas.ok("config:get", copy, "GREETING") == "Hello again\n"
    # A rename moves it: the old name answers no more.
    renamed = unique("renamed")
    paas.apps.add(renamed)
    paas.ok("apps:rename", copy, renamed)
    paas.wait_page(renamed, "Hello again")
    assert paas.get(copy)[0] == 404
    assert paas.cli("apps:exists", copy).returncode == 1
    assert [v for v, _, _ in _releases(paas, renamed)] == [1]
    paas.wait_page(app, "Hello again")  # the original is untouched
