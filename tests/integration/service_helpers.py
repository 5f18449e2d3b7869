"""A light daemon for service tests (no router, SSH or cache: a service needs none of them),
started and SIGKILLed by the test, and clean-up of the services it made."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon_helpers import daemon_env, shipmate, wait_status
from tests.integration.engine_helpers import remove_machine_containers
from tests.integration.paas_helpers import run, unique


class Daemon:
    """One daemon process of a state dir, started and SIGKILLed by the test."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.machine = unique("svc-m")
        self.env = daemon_env(state_dir, SHIPMATE_MACHINE_ID=self.machine)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        (self.state_dir / "shipmate.sock").unlink(missing_ok=True)
        log = open(self.state_dir / "daemon-test.log", "ab")  # noqa: SIM115 - the child's
        self.proc = subprocess.Popen([sys.executable, "-m", "shipmate.cli.main", "daemon"],
                                     env=self.env, stdout=log, stderr=log,
                                     start_new_session=True)
        log.close()
        wait_status(self.env, timeout=60)

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def cli(self, *args: str, timeout: float = 180, input: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "shipmate.cli.main", *args],
                              env=self.env, capture_output=True, text=True, timeout=timeout,
                              input=input)

    def ok(self, *args: str, timeout: float = 180, input: str | None = None) -> str:
        res = self.cli(*args, timeout=timeout, input=input)
        assert res.returncode == 0, f"shipmate {' '.join(args)}: {res.stdout}{res.stderr}"
        return res.stdout

    def binary(self, *args: str, data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        """``shipmate ARGS`` with binary standard input and output."""
        return subprocess.run([sys.executable, "-m", "shipmate.cli.main", *args],
                              env=self.env, input=data, capture_output=True, timeout=300,
                              check=False)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path / "state")
    d.state_dir.mkdir()
    d.start()
    yield d
    d.stop()
    remove_machine_containers("unix:///var/run/docker.sock", d.machine)




def forget(d: Daemon, kind: str, name: str) -> None:
    """Destroy a service a test made, and whatever of it is left."""
    shipmate(d.env, f"{kind}:destroy", name, "--force", timeout=120)
    run(["docker", "rm", "-f", f"shipmate-{kind}-{name}"])
    run(["docker", "volume", "rm", "-f", f"shipmate-{kind}-{name}-data"])
    run(["docker", "network", "rm", f"shipmate-svc-{kind}-{name}"])


__all__ = ["Daemon", "daemon", "forget"]
