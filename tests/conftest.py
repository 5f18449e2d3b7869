"""Shared fixtures: real services for integration tests (etcd, dockerd)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _wait_port(host: str, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout}s")


class EtcdServer:
    """A real etcd member (Debian's etcd-server) on loopback, in a temporary data dir."""

    def __init__(self, name: str = "default", host: str = "127.0.0.1") -> None:
        self.name = name
        self.host = host
        self.client_port = free_port(host)
        self.peer_port = free_port(host)
        self.data_dir = Path(tempfile.mkdtemp(prefix="shipmate-etcd-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.client_port}"

    def start(self, extra: list[str] | None = None) -> None:
        binary = shutil.which("etcd")
        if binary is None:
            raise RuntimeError("etcd not found: run scripts/bootstrap (installs etcd-server)")
        cmd = [
            binary, "--name", self.name, "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.endpoint, "--advertise-client-urls", self.endpoint,
            "--listen-peer-urls", f"http://{self.host}:{self.peer_port}",
            "--initial-advertise-peer-urls", f"http://{self.host}:{self.peer_port}",
            "--initial-cluster", f"{self.name}=http://{self.host}:{self.peer_port}",
            *(extra or []),
        ]
        log = open(self.data_dir / "etcd.log", "ab")  # noqa: SIM115 - kept for the process
        env = ({**os.environ, "ETCD_UNSUPPORTED_ARCH": "arm64"}
               if os.uname().machine == "aarch64" else None)
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
        _wait_port(self.host, self.client_port)
        if "--initial-cluster" not in (extra or []):  # a lone member elects itself at once
            self.wait_healthy()

    def wait_healthy(self, timeout: float = 20.0) -> None:
        """Wait until etcd serves requests (it has a leader), not only listens: a client
        with a short timeout can otherwise meet a member still electing itself."""
        import json
        import urllib.request

        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.endpoint}/health", timeout=1) as resp:
                    if json.loads(resp.read()).get("health") == "true":
                        return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd at {self.endpoint} not healthy after {timeout}s")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdServer]:
    """One real etcd for the session (tests use distinct key prefixes)."""
    server = EtcdServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def etcd_prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix unique to this test, for isolation on the shared etcd."""
    return f"/t/{request.node.name}-{time.monotonic_ns()}/"


def docker_available() -> bool:
    try:
        out = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                             capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


@pytest.fixture(scope="session")
def docker_host() -> str:
    """The real dockerd's address; fails (not skips) when none runs: scripts/test starts it."""
    if not docker_available():
        pytest.fail("no Docker engine answers: run scripts/bootstrap (starts dockerd)")
    return os.environ.get("SHIPMATE_DOCKER_HOST", "unix:///var/run/docker.sock")


BASE_IMAGE = "shipmate/base:bookworm"


def ensure_images(docker_host: str, only: set[str] | None = None) -> None:
    """Bootstrap Shipmate's base images if missing (idempotent, fast when warm)."""
    import asyncio

    from shipmate import config
    from shipmate.engine.docker import DockerEngine
    from shipmate.engine.images import bootstrap

    async def ensure() -> None:
        engine = DockerEngine(docker_host)
        try:
            await bootstrap(engine, mirror=config.load().debian_mirror, only=only)
        finally:
            await engine.close()

    asyncio.run(ensure())


@pytest.fixture(scope="session")
def base_image(docker_host: str) -> str:
    """shipmate/base:bookworm, bootstrapped once per session if it is not there yet."""
    ensure_images(docker_host, {BASE_IMAGE})
    return BASE_IMAGE
