"""Drive a real local cluster (`shipmate cluster ...`) from integration tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from shipmate.cluster import spec as sp

T = TypeVar("T")


class ClusterCli:
    """The real CLI against one cluster, with its own host state dir."""

    def __init__(self, name: str, subnet: str, state_dir: Path) -> None:
        self.name, self.subnet, self.state_dir = name, subnet, state_dir
        self.shape = sp.plan(name, 3, subnet)

    def run(self, *args: str, node: str | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``shipmate ARGS``; with ``node``, against that node's daemon (what ``--cluster
        NODE`` does: the node's socket on the host)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPMATE_")}
        if node:
            env["SHIPMATE_SOCKET"] = str(
                sp.host_dir(self.state_dir, self.name, node) / "shipmate.sock")
        res = subprocess.run([sys.executable, "-m", "shipmate.cli.main", "--state-dir",
                              str(self.state_dir), *args], env=env, capture_output=True,
                             text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"shipmate {' '.join(args)} failed:\n{res.stdout}{res.stderr}")
        return res

    def cluster(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        """``shipmate cluster VERB --name NAME ARGS``."""
        return self.run("cluster", args[0], "--name", self.name, *args[1:], **kw)

    def status(self) -> dict[str, Any]:
        """``cluster status --format json``."""
        return dict(json.loads(self.cluster("status", "--format", "json").stdout))

    def machines(self, node: str) -> list[str]:
        """Machine IDs ``fleet list-machines`` shows on ``node``."""
        out = self.run("fleet", "list-machines", "--no-legend", "--full", node=node).stdout
        return sorted(line.split()[0] for line in out.splitlines() if line.strip())

    def units(self, node: str) -> dict[str, tuple[str, str]]:
        """Unit -> (machine, sub state) from ``fleet list-units`` on ``node``."""
        out = self.run("fleet", "list-units", "--no-legend", "--full",
                       "--fields", "unit,machine,sub", node=node).stdout
        rows = [line.split() for line in out.splitlines() if line.strip()]
        return {r[0]: (r[1].split("/")[0], r[2]) for r in rows}

    def inner(self, node: str, *args: str, check: bool = True) -> str:
        """``docker exec CLUSTER-NODE ARGS``: a command inside a node."""
        res = subprocess.run(["docker", "exec", f"{self.name}-{node}", *args],
                             capture_output=True, text=True, timeout=60)
        if check and res.returncode != 0:
            raise AssertionError(f"{args} in {node} failed: {res.stdout}{res.stderr}")
        return res.stdout

    def running_labels(self, node: str, label: str) -> list[str]:
        """Values of ``label`` on the containers running inside ``node``."""
        out = self.inner(node, "docker", "ps", "--filter", f"label={label}",
                         "--format", f'{{{{.Label "{label}"}}}}', check=False)
        return out.split()

    def address(self, node: str) -> str:
        """The node's address."""
        return self.shape.node(node).address

    def push(self, key: Path, tree: Path, app: str, node: str,
             timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """``git push`` the work tree ``tree`` to ``app`` on ``node``'s SSH server."""
        ssh = (f"ssh -i {key} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no "
               "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes")
        return subprocess.run(["git", "push", f"ssh://shipmate@{self.address(node)}:2222/{app}",
                               "HEAD:refs/heads/main"], cwd=tree, capture_output=True,
                              env={**os.environ, "GIT_SSH_COMMAND": ssh}, text=True,
                              timeout=timeout)


def http_get(address: str, host: str, timeout: float = 3.0) -> tuple[int, str]:
    """GET http://ADDRESS/ with a Host header; (status, body) or (0, error)."""
    req = urllib.request.Request(f"http://{address}/", headers={"Host": host})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode().strip()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError as exc:
        return 0, str(exc)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float,
             interval: float = 0.5) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            found = probe()
        except AssertionError as exc:  # e.g. a daemon still starting: keep polling
            last = exc
        else:
            if found:
                return found
            last = found
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def codeit_unit(i: int) -> str:
    """A code.it-style unit: a web container answering ``codeit-I``, routed as app codeit
    (``[X-Shipmate]`` makes the agent of its machine publish its endpoint under the machine's
    lease), at most one per machine. The label is only for the tests to find it."""
    page = f"mkdir -p /srv && echo codeit-{i} > /srv/index.html && cd /srv && " \
           "exec python3 -m http.server 5000"
    return f"""[Unit]
Description=code.it {i}

[Container]
Image=shipmate/python:3.11
Exec=sh -c "{page}"
PublishPort=5000
Label=shipmate.instance=web.{i}

[X-Shipmate]
Route=codeit
RoutePort=5000
Release=r1

[X-Fleet]
Conflicts=codeit.*.container
"""
