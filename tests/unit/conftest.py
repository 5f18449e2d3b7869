"""Unit tests stand alone: no etcd, no dockerd, no TCP port, no network.

Every unit test runs under a guard that refuses, and reports as a failure of that test, what
would need the outside world: a TCP/UDP socket that connects or binds (IPv4 or IPv6), a
connection to dockerd's socket, starting ``etcd``, ``dockerd`` or ``docker``. Unix sockets in
a temporary directory, pipes and other programs (git, nginx -t, ssh-keygen) stay allowed.

The guard is refused with an ``OSError``, as a stopped service or a missing network would be,
so the code under test takes its ordinary error path; the test then fails at teardown naming
the call. Whatever needs the real thing belongs in tests/integration. To check the suite
against a machine with nothing running at all (docs/testing.md)::

    unshare -n env DOCKER_HOST=unix:///nonexistent .venv/bin/pytest tests/unit -q
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

#: Programs a unit test must not start.
FORBIDDEN_PROGRAMS = frozenset({"etcd", "etcdctl", "dockerd", "docker", "containerd"})
#: dockerd's usual sockets (and the configured one, added below).
DOCKER_SOCKETS = frozenset({"/var/run/docker.sock", "/run/docker.sock"})


class IsolationError(PermissionError):
    """A unit test reached for the network, a real service or a port."""


def _docker_sockets() -> frozenset[str]:
    configured = os.environ.get("SHIPMATE_DOCKER_HOST", "")
    extra = {configured.removeprefix("unix://")} if configured.startswith("unix://") else set()
    return DOCKER_SOCKETS | extra


def _refused(address: Any, family: int) -> str | None:
    """Why connecting to or binding ``address`` is refused, or None."""
    if family in (socket.AF_INET, socket.AF_INET6):
        return f"an {'IPv6' if family == socket.AF_INET6 else 'IPv4'} socket to {address!r}"
    if family == socket.AF_UNIX and isinstance(address, str | bytes):
        path = os.fsdecode(address)
        if path in _docker_sockets():
            return f"dockerd's socket {path}"
    return None


def _program(args: Any) -> str:
    argv0 = args if isinstance(args, str | bytes | os.PathLike) else (list(args) or [""])[0]
    return os.path.basename(os.fsdecode(argv0))


@pytest.fixture(autouse=True)
def _stand_alone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Refuse and report the network, dockerd and etcd for the duration of each test."""
    violations: list[str] = []

    def refuse(what: str) -> IsolationError:
        violations.append(what)
        return IsolationError(f"unit tests stand alone: refused {what}")

    def guarded(method: str) -> Any:
        real = getattr(socket.socket, method)

        def call(self: socket.socket, address: Any, *args: Any) -> Any:
            why = _refused(address, self.family)
            if why is not None:
                raise refuse(f"{method}() of {why}")
            return real(self, address, *args)

        return call

    for method in ("connect", "connect_ex", "bind"):
        monkeypatch.setattr(socket.socket, method, guarded(method))

    real_popen = subprocess.Popen

    class GuardedPopen(real_popen):  # type: ignore[misc, valid-type]
        def __init__(self, args: Any, *rest: Any, **kwargs: Any) -> None:
            program = _program(args)
            if program in FORBIDDEN_PROGRAMS:
                raise refuse(f"starting {program}")
            super().__init__(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", GuardedPopen)
    yield
    if violations:
        pytest.fail("this unit test needs the outside world (move it to tests/integration "
                    "or use the fakes in shipmate.testing):\n  " + "\n  ".join(violations),
                    pytrace=False)
