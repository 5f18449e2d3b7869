"""A hand-written ``.container`` unit with ``[X-Shipmate] Domain=`` answers through the router
by its domain, as an app does: a real daemon (agent + router + nginx), a real container."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import daemon_helpers
from tests.integration.daemon_helpers import shipmate

pytestmark = pytest.mark.integration
PYTHON = "shipmate/python:3.11"


@pytest.fixture
def routed_daemon(tmp_path: Path, docker_host: str) -> Iterator[tuple[dict[str, str], int, str]]:
    with daemon_helpers.routed_daemon(tmp_path, docker_host, "test-ur") as daemon:
        yield daemon


def get(port: int, host: str) -> tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": host})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(exc)


def until(check, timeout: float = 60) -> object:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.3)


def test_a_container_unit_with_a_domain_answers_through_the_router(
        routed_daemon: tuple[dict[str, str], int, str], tmp_path: Path) -> None:
    env, port, machine = routed_daemon
    tag = uuid.uuid4().hex[:6]
    domain, unit = f"shop-{tag}.example.com", f"shop{tag}@1.container"
    text = (f"[Container]\nImage={PYTHON}\n"
            "Exec=/bin/sh -c 'mkdir -p /srv && echo hello from %n > /srv/index.html && "
            "exec python3 -m http.server 8080 --directory /srv'\n"
            "PublishPort=8080\n\n"
            f"[X-Fleet]\nMachineID={machine}\n\n[X-Shipmate]\nDomain={domain}\n")
    path = tmp_path / unit
    path.write_text(text)
    started = shipmate(env, "fleet", "start", str(path))
    assert started.returncode == 0, started.stdout + started.stderr

    _status, body = until(lambda: (r := get(port, domain))[0] == 200 and r)  # type: ignore
    assert body.strip() == f"hello from {unit}"
    assert get(port, f"other-{tag}.example.com")[0] != 200  # by domain, not any host

    # the endpoint lives under the machine's lease, named by the unit's route
    listed = shipmate(env, "fleet", "list-units", "--format", "json")
    row = next(r for r in json.loads(listed.stdout) if r["unit"] == unit)
    assert (row["machine"], row["active"]) == (machine, "active")

    stopped = shipmate(env, "fleet", "stop", unit)
    assert stopped.returncode == 0, stopped.stderr
    until(lambda: get(port, domain)[0] != 200)
