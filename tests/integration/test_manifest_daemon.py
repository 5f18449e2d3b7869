"""``shipmate apply --via-daemon`` with a real daemon and dockerd: a manifest's containers run
as .container units pinned to the daemon's machine; a second apply changes nothing; a changed
container is replaced alone; --prune removes only this manifest's undeclared units."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import pytest

from shipmate.engine.base import ContainerInfo
from shipmate.engine.docker import DockerEngine
from tests.integration.daemon_helpers import daemon_env, shipmate, wait_status
from tests.integration.engine_helpers import remove_machine_containers

pytestmark = pytest.mark.integration
BASE = "shipmate/base:bookworm"
MACHINE_LABEL = "shipmate.machine"
SLEEP = ["bash", "-c", "trap 'exit 0' TERM; sleep infinity & wait"]  # stops at once
ODD = 'two words, "quotes", it\'s 100% %n\nsecond line'



@pytest.fixture
def daemon(tmp_path: Path, docker_host: str, base_image: str):
    machine = f"test-md-{uuid.uuid4().hex[:8]}"
    env = daemon_env(tmp_path / "state", SHIPMATE_MACHINE_ID=machine,
                     SHIPMATE_DOCKER_HOST=docker_host)
    up = shipmate(env, "up")
    assert up.returncode == 0, up.stderr
    try:
        wait_status(env)
        yield env, machine
    finally:
        shipmate(env, "down")
        remove_machine_containers(docker_host, machine)


def containers(docker_host: str, machine: str) -> dict[str, ContainerInfo]:
    async def run() -> list[ContainerInfo]:
        engine = DockerEngine(docker_host)
        try:
            return await engine.list({MACHINE_LABEL: machine})
        finally:
            await engine.close()

    return {c.name: c for c in asyncio.run(run())}


def write(path: Path, name: str, prefix: str, *, web_value: str = ODD,
          with_db: bool = True) -> Path:
    """The manifest, written as JSON (which is YAML too)."""
    web: dict[str, object] = {
        "image": BASE, "command": SLEEP,
        "env": {"VALUE": web_value, "EMPTY": ""}, "ports": ["127.0.0.1::8080"],
        "volumes": ["/tmp:/host-tmp:ro"], "labels": {"team": "core ops"},
        "health": {"test": "test -d /host-tmp", "interval": 0.5},
    }
    found: dict[str, object] = {f"{prefix}-web": web}
    if with_db:
        web["depends_on"] = [f"{prefix}-db"]
        found[f"{prefix}-db"] = {"image": BASE, "command": SLEEP,
                                 "env": {"ROLE": "db"}, "restart": "always"}
    path.write_text(json.dumps({"name": name, "containers": found}, indent=2))
    return path


def apply(env: dict[str, str], file: Path, *extra: str):
    res = shipmate(env, "apply", str(file), "--via-daemon", "--yes", "--timeout", "60",
                   *extra, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def unit_files(env: dict[str, str]) -> dict[str, dict[str, object]]:
    res = shipmate(env, "fleet", "list-unit-files", "--format", "json")
    assert res.returncode == 0, res.stderr
    return {r["unit"]: r for r in json.loads(res.stdout)}


def test_apply_via_daemon_runs_units_and_converges(daemon, docker_host: str,
                                                   tmp_path: Path) -> None:
    env, machine = daemon
    uid = uuid.uuid4().hex[:6]
    name, prefix = f"md{uid}", f"md{uid}"
    file = write(tmp_path / "m.yaml", name, prefix)

    first = apply(env, file)
    db_unit, web_unit = (f"manifest-{name}-{prefix}-{c}.container" for c in ("db", "web"))
    assert f"submit {db_unit}" in first.stdout and f"{web_unit}: active/running" in first.stdout
    # depends_on: web is started only once db is active
    assert first.stdout.index(f"{db_unit}: active") < first.stdout.index(f"start {web_unit}")
    running = containers(docker_host, machine)
    web, db = running[f"{prefix}-web"], running[f"{prefix}-db"]
    assert web.running and db.running and web.health == "healthy"
    assert web.env["VALUE"] == ODD and web.env["EMPTY"] == ""
    assert web.labels["team"] == "core ops" and web.labels["shipmate.unit"] == web_unit
    assert [(p.container_port, p.host_ip) for p in web.ports] == [(8080, "127.0.0.1")]
    assert web.raw["HostConfig"]["Binds"] == ["/tmp:/host-tmp:ro"]
    assert db.raw["HostConfig"]["RestartPolicy"]["Name"] == "always"
    # The environment runs, but is not shown: fleet cat and fleet status give names only.
    cat = shipmate(env, "fleet", "cat", web_unit)
    assert cat.returncode == 0 and "VALUE=<redacted>" in cat.stdout
    status = shipmate(env, "fleet", "status", web_unit, "--format", "json")
    for shown in (cat.stdout, status.stdout):
        assert "two words" not in shown and "second line" not in shown
    files = unit_files(env)
    assert files[web_unit]["dstate"] == "launched"
    assert [m["id"] for m in files[web_unit]["machines"]] == [machine]  # type: ignore[union-attr]

    again = apply(env, file)
    assert "no changes" in again.stdout and "submit" not in again.stdout
    assert {n: c.id for n, c in containers(docker_host, machine).items()} == {
        f"{prefix}-web": web.id, f"{prefix}-db": db.id}

    apply(env, write(file, name, prefix, web_value="changed"))
    now = containers(docker_host, machine)
    assert now[f"{prefix}-db"].id == db.id
    assert now[f"{prefix}-web"].id != web.id and now[f"{prefix}-web"].env["VALUE"] == "changed"

    # another manifest whose name starts with this one's: --prune must not touch it
    other = write(tmp_path / "other.yaml", f"{name}-x", f"{prefix}x", with_db=False)
    apply(env, other)
    other_unit = f"manifest-{name}-x-{prefix}x-web.container"

    kept = apply(env, write(file, name, prefix, web_value="changed", with_db=False))
    assert f"{db_unit}: no longer declared, kept" in kept.stdout
    assert db_unit in unit_files(env)
    pruned = apply(env, file, "--prune")
    assert f"destroy {db_unit}" in pruned.stdout
    files = unit_files(env)
    assert db_unit not in files and web_unit in files and other_unit in files
    deadline = time.monotonic() + 30
    while f"{prefix}-db" in containers(docker_host, machine) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = containers(docker_host, machine)
    assert f"{prefix}-db" not in left and f"{prefix}x-web" in left


def test_unwritable_manifest_is_refused_before_any_change(daemon, tmp_path: Path) -> None:
    env, _machine = daemon
    file = tmp_path / "bad.yaml"
    # A unit line is at most 2,048 bytes (fleet's limit): this env value cannot be written.
    file.write_text(f"name: bad\ncontainers:\n  bad-one:\n    image: {BASE}\n"
                    f"    env:\n      BIG: {'x' * 3000}\n")
    res = shipmate(env, "apply", str(file), "--via-daemon", "--yes")
    assert res.returncode == 1 and "longer than" in res.stderr
    assert not [u for u in unit_files(env) if u.startswith("manifest-bad-")]


def test_a_replacement_failing_its_check_keeps_the_old_container(daemon, docker_host: str,
                                                                 tmp_path: Path) -> None:
    env, machine = daemon
    name = f"mh{uuid.uuid4().hex[:6]}"
    container, unit = f"{name}-api", f"manifest-{name}-{name}-api.container"
    file = tmp_path / "h.yaml"

    def write_check(check: str, value: str) -> None:
        file.write_text(json.dumps({"name": name, "containers": {container: {
            "image": BASE, "command": SLEEP, "env": {"V": value}, "ports": ["127.0.0.1::8080"],
            "health": {"test": check, "interval": 0.5, "retries": 1, "wait": 20}}}}))

    write_check("test -d /tmp", "1")
    apply(env, file)
    before = containers(docker_host, machine)[container]
    assert before.health == "healthy"

    write_check("test -d /nonexistent", "2")
    res = shipmate(env, "apply", str(file), "--via-daemon", "--yes", "--timeout", "60",
                   timeout=120)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert f"replace {unit}" in out and "failed its health check" in out
    now = containers(docker_host, machine)
    assert list(now) == [container]  # the new one is gone, the old one kept its name
    assert now[container].id == before.id and now[container].running
    assert now[container].env["V"] == "1"

    status = shipmate(env, "fleet", "status", unit)
    assert "Active: failed (failed); " in status.stdout, status.stdout
    assert "failed its health check" in status.stdout and "kept the old one" in status.stdout
    listed = shipmate(env, "fleet", "list-units", "--format", "json")
    rows = {r["unit"]: r for r in json.loads(listed.stdout)}
    assert rows[unit]["active"] == "failed"

    write_check("test -d /tmp", "3")  # fixed: replaced, start-first, once healthy
    apply(env, file)
    fixed = containers(docker_host, machine)[container]
    assert fixed.id != before.id and fixed.env["V"] == "3" and fixed.health == "healthy"
