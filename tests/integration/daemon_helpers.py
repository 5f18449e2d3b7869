"""Start and stop real `shipmate` daemons for integration tests."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path


def daemon_env(state_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a test daemon: its own state dir, only the components asked for."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPMATE_")}
    env.update({"SHIPMATE_STATE_DIR": str(state_dir), "SHIPMATE_ROUTER": "0",
                "SHIPMATE_CACHE": "0", "SHIPMATE_SSH": "0", "SHIPMATE_MACHINE_ID": "test-m1"})
    env.update(extra)
    return env


def shipmate(env: dict[str, str], *args: str,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real CLI as a user would."""
    return subprocess.run([sys.executable, "-m", "shipmate.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def wait_status(env: dict[str, str], timeout: float = 30) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        res = shipmate(env, "status", "--format", "json")
        if res.returncode == 0:
            return json.loads(res.stdout)
        if time.monotonic() > deadline:
            raise AssertionError(f"daemon never answered: {res.stderr}")
        time.sleep(0.2)


def pids_of_daemon(state_dir: Path) -> list[int]:
    """PIDs of `shipmate daemon` processes whose environment names this state dir."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"daemon" in cmd and f"SHIPMATE_STATE_DIR={state_dir}".encode() in env:
            found.append(int(proc.name))
    return found


@contextlib.contextmanager
def routed_daemon(tmp_path: Path, docker_host: str, prefix: str
                  ) -> Iterator[tuple[dict[str, str], int, str]]:
    """A daemon with its router on a free port (``shipmate up``): (env, HTTP port, machine
    id); stopped and its containers removed afterwards."""
    from tests.conftest import ensure_images, free_port
    from tests.integration.engine_helpers import remove_machine_containers

    ensure_images(docker_host, {"shipmate/python:3.11"})
    machine, port = f"{prefix}-{uuid.uuid4().hex[:8]}", free_port()
    env = daemon_env(tmp_path / "state", SHIPMATE_MACHINE_ID=machine,
                     SHIPMATE_DOCKER_HOST=docker_host, SHIPMATE_ROUTER="1",
                     SHIPMATE_HTTP_PORT=str(port))
    up = shipmate(env, "up")
    assert up.returncode == 0, up.stderr
    try:
        wait_status(env)
        yield env, port, machine
    finally:
        shipmate(env, "down")
        remove_machine_containers(docker_host, machine)
