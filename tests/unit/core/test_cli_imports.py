"""A thin command is a thin client: ``shipmate --version``, ``apps:list`` and ``fleet
list-units`` load no aiohttp, docker-py, YAML, SSH or crypto library, and none of the
manifest, cluster, store or engine stacks. Each case runs in a fresh interpreter (against a
canned daemon on a unix socket) and lists what it imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shipmate.cli.main import COMMAND_MODULES

HEAVY = ("aiohttp", "docker", "yaml", "asyncssh", "cryptography", "aetcd", "grpc",
         "shipmate.converge", "shipmate.spec.manifest", "shipmate.cluster.lifecycle",
         "shipmate.cluster.status", "shipmate.engine.docker", "shipmate.store",
         "shipmate.daemon.main", "shipmate.paas.service", "shipmate.agent")

# Answers every request on the socket with one canned JSON body, then runs the CLI.
SCRIPT = """
import json, socketserver, sys, threading
sock, body, argv = sys.argv[1], sys.argv[2].encode(), sys.argv[3:]

class Answer(socketserver.StreamRequestHandler):
    def handle(self):
        while self.rfile.readline() not in (b"\\r\\n", b""):
            pass
        self.wfile.write(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n"
                         b"Content-Length: %d\\r\\n\\r\\n%s" % (len(body), body))

server = socketserver.UnixStreamServer(sock, Answer)
threading.Thread(target=server.serve_forever, daemon=True).start()
from shipmate.cli.main import main
try:
    code = main(argv)
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def _run(tmp_path: Path, body: object, *argv: str) -> tuple[int, str, set[str]]:
    env = {"SHIPMATE_STATE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "shipmate.sock"),
                          json.dumps(body), *argv], env=env, capture_output=True, text=True,
                         timeout=60)
    report = json.loads(res.stderr.strip().splitlines()[-1])
    return report["code"], res.stdout, set(report["modules"])


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.mark.parametrize(("argv", "body", "out"), [
    (("--version",), None, "shipmate "),
    (("apps:list",), [{"name": "web", "locked": False, "created": "x"}], "=====> My Apps\nweb\n"),
    (("fleet", "list-units", "--no-legend"), [{"unit": "a.service", "machine": "m1",
                                               "active": "active", "sub": "running"}],
     "a.service"),
])
def test_thin_commands_import_no_heavy_stack(tmp_path: Path, argv: tuple[str, ...],
                                             body: object, out: str) -> None:
    code, stdout, modules = _run(tmp_path, body, *argv)
    assert code in (0, None)
    assert out in stdout
    assert _heavy(modules) == []


def test_version_loads_no_command_module_nor_event_loop(tmp_path: Path) -> None:
    _, _, modules = _run(tmp_path, None, "--version")
    assert "asyncio" not in modules
    assert not modules & set(COMMAND_MODULES)


def test_the_check_sees_a_heavy_import(tmp_path: Path) -> None:
    """The list is not vacuous: a command that needs the manifest stack loads it."""
    (tmp_path / "m.yaml").write_text("name: demo\ncontainers: {}\n")
    _, _, modules = _run(tmp_path, None, "plan", str(tmp_path / "m.yaml"))
    assert "yaml" in _heavy(modules)
