"""Data that outlives deploys, for real: storage mounts, Postgres services as units, dumps.

One daemon for the module (router, SSH, package cache on free ports). Covers: a file an app
wrote into its mount survives a redeploy; bad mounts are refused and nothing is recorded
(locally and over SSH); the example counts visits in a linked Postgres across redeploys;
committed rows survive a SIGKILL of the server; an export imported into a new service gives
identical rows; a linked service cannot be destroyed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.paas_helpers import ROOT, PaasDaemon, paas, run, unique, work_tree

pytestmark = pytest.mark.integration
__all__ = ["paas"]  # the fixture, imported for pytest
VISITS = ROOT / "examples" / "python-visits"


@pytest.fixture
def services(paas: PaasDaemon) -> Iterator[list[str]]:
    """Names of Postgres services a test made; destroyed (with their data) afterwards."""
    made: list[str] = []
    yield made
    for name in made:
        for app in paas.apps:
            paas.cli("postgres:unlink", name, app, timeout=120)
        paas.cli("postgres:destroy", name, "--force", timeout=120)
        run(["docker", "rm", "-f", f"shipmate-postgres-{name}"])
        run(["docker", "volume", "rm", "-f", f"shipmate-postgres-{name}-data"])
        run(["docker", "network", "rm", f"shipmate-svc-postgres-{name}"])


def _one_container(paas: PaasDaemon, app: str, not_id: str = "", timeout: float = 60) -> str:
    """The ID of the app's single running container (other than ``not_id``)."""
    deadline = time.monotonic() + timeout
    while True:
        found = paas.containers(app)
        if len(found) == 1 and found[0]["Id"] != not_id:
            return str(found[0]["Id"])
        assert time.monotonic() < deadline, f"{len(found)} containers of {app}"
        time.sleep(0.3)


def test_a_file_in_a_storage_mount_survives_a_redeploy(paas: PaasDaemon,
                                                        tmp_path: Path) -> None:
    tree, app = work_tree(tmp_path / "tree"), unique("stored")
    assert paas.push(tree, app).returncode == 0
    out = paas.ok("storage:ensure-directory", app)
    host = f"{paas.state_dir}/storage/{app}"
    assert f"-----> Ensuring {host} exists" in out
    paas.ok("storage:mount", app, f"{host}:/app/storage")
    listed = json.loads(paas.ok("storage:list", app, "--format", "json"))
    assert listed == [{"host_path": host, "container_path": "/app/storage",
                       "volume_options": ""}]
    assert paas.ok("storage:report", app, "--storage-deploy-mounts").strip() == \
        f"-v {host}:/app/storage"
    paas.ok("ps:restart", app)  # applies the mount now
    first = _one_container(paas, app)
    wrote = run(["docker", "exec", first, "sh", "-c", "echo kept > /app/storage/file"])
    assert wrote.returncode == 0, wrote.stderr
    paas.ok("ps:restart", app)
    second = _one_container(paas, app, not_id=first)
    read = run(["docker", "exec", second, "cat", "/app/storage/file"])
    assert read.stdout == "kept\n", read.stderr
    assert Path(host, "file").read_text() == "kept\n"
    scaled = paas.ok("ps:scale", app, "web=1")
    assert f"{app} has local storage on machine" in scaled


def test_bad_mounts_are_refused_and_nothing_is_recorded(paas: PaasDaemon) -> None:
    app = unique("badmount")
    paas.ok("apps:create", app)
    paas.apps.add(app)
    for spec in ("/:/data", "/etc:/data", f"{paas.state_dir}:/data", "/var/run/docker.sock:/x",
                 "/srv/../etc:/data", "/var:/data", "nosuchdir:/data", f"{app}:/"):
        res = paas.cli("storage:mount", app, spec)
        assert res.returncode == 1, spec
        assert " !     Refusing to mount" in res.stderr, (spec, res.stderr)
    paas.ok("storage:ensure-directory", app)
    remote = paas.ssh("storage:mount", app, "/tmp:/data")
    assert remote.returncode != 0 and "over SSH" in remote.stderr, remote.stderr
    assert json.loads(paas.ok("storage:list", app, "--format", "json")) == []
    over_ssh = paas.ssh("storage:mount", app, f"{paas.state_dir}/storage/{app}:/data")
    assert over_ssh.returncode == 0, over_ssh.stderr
    assert len(json.loads(paas.ok("storage:list", app, "--format", "json"))) == 1


def _psql(paas: PaasDaemon, name: str, sql: str) -> str:
    res = paas.cli("postgres:connect", name, input=sql, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def _visits(paas: PaasDaemon, app: str) -> int:
    status, body = paas.get(app)
    assert status == 200 and body.startswith("Visits: "), (status, body)
    return int(body.split()[1])


def test_the_example_counts_visits_in_a_linked_postgres_across_redeploys(
        paas: PaasDaemon, services: list[str], tmp_path: Path) -> None:
    name, app = unique("db"), unique("visits")
    services.append(name)
    created = paas.ok("postgres:create", name, timeout=900)
    assert f"=====> Postgres container created: {name}" in created
    tree = work_tree(tmp_path / "tree", VISITS)
    assert paas.push(tree, app, timeout=600).returncode == 0
    paas.wait_page(app, "No database linked")
    linked = paas.ok("postgres:link", name, app, timeout=300)
    assert "DATABASE_URL" in linked and "Application deployed" in linked
    first = _visits(paas, app)
    assert _visits(paas, app) == first + 1
    paas.ok("ps:restart", app, timeout=300)
    assert _visits(paas, app) >= first + 2  # the count outlived the redeploy
    info = paas.ok("postgres:info", name, "--links").strip()
    assert info == app
    units = paas.ok("fleet", "list-units")
    assert f"postgres-{name}.container" in units
    refused = paas.cli("postgres:destroy", name, "--force")
    assert refused.returncode == 1 and "Cannot delete linked service" in refused.stderr
    assert run(["docker", "volume", "inspect", f"shipmate-postgres-{name}-data"]).returncode == 0
    # Only linked apps are on the service's network: the database has no host port.
    (pg,) = json.loads(run(["docker", "inspect", f"shipmate-postgres-{name}"]).stdout)
    assert list(pg["NetworkSettings"]["Networks"]) == [f"shipmate-svc-postgres-{name}"]
    assert not any(pg["NetworkSettings"]["Ports"].values())


def test_committed_rows_survive_a_sigkill_and_a_dump_restores_identically(
        paas: PaasDaemon, services: list[str]) -> None:
    name, copy = unique("crash"), unique("copy")
    services += [name, copy]
    paas.ok("postgres:create", name, timeout=900)
    _psql(paas, name, "CREATE TABLE t (id int PRIMARY KEY, note text);")
    network, host = f"shipmate-svc-postgres-{name}", f"shipmate-postgres-{name}"
    password = paas.ok("postgres:info", name, "--dsn").split(":")[2].split("@")[0]
    loop = ("i=0; while true; do i=$((i+1)); psql -qAt -h " + host + " -U postgres -d "
            + name.replace("-", "_") + " -c \"INSERT INTO t VALUES ($i, 'row $i')\" "
            "|| exit 0; echo $i; done")
    client = subprocess.Popen(["docker", "run", "--rm", "--network", network, "-e",
                               f"PGPASSWORD={password}", "shipmate/postgres:15", "sh", "-c", loop],
                              stdout=subprocess.PIPE, text=True)
    time.sleep(3)
    state = json.loads(run(["docker", "inspect", host]).stdout)[0]["State"]
    assert run(["kill", "-9", str(state["Pid"])]).returncode == 0  # the server dies mid-stream
    out, _ = client.communicate(timeout=60)
    acked = [int(x) for x in out.split()]
    assert len(acked) > 5
    _wait_restarted(paas, "postgres", name, state["StartedAt"])
    rows = _psql(paas, name, "\\pset tuples_only on\nSELECT id FROM t ORDER BY id;")
    kept = {int(x) for x in rows.split()}
    assert set(acked) <= kept  # every acknowledged insert is there
    raw = run_bytes(paas, "postgres:export", name)
    assert raw.startswith(b"PGDMP")
    paas.ok("postgres:create", copy, timeout=900)
    imported = cli_bytes(paas, "postgres:import", copy, data=raw)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert b"=====> Imported into" in imported.stdout
    query = "\\pset tuples_only on\nSELECT id, note FROM t ORDER BY id;"
    assert _psql(paas, copy, query) == _psql(paas, name, query)


def _wait_restarted(paas: PaasDaemon, kind: str, name: str, started: str,
                    timeout: float = 120) -> None:
    """Wait until the killed server runs again in a container started after ``started``
    (and the daemon says so): a status read before the agent saw the kill proves nothing."""
    deadline = time.monotonic() + timeout
    while True:
        res = run(["docker", "inspect", f"shipmate-{kind}-{name}"])
        now = json.loads(res.stdout)[0]["State"] if res.returncode == 0 else {}
        if now.get("Running") and now.get("StartedAt") != started and \
                paas.ok(f"{kind}:info", name, "--status").strip() == "running":
            return
        assert time.monotonic() < deadline, f"the service did not come back: {now}"
        time.sleep(1)


def cli_bytes(paas: PaasDaemon, *args: str,
              data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """``shipmate ARGS`` with binary standard input and output."""
    return subprocess.run([sys.executable, "-m", "shipmate.cli.main", *args], env=paas.env,
                          input=data, capture_output=True, timeout=300, check=False)


def run_bytes(paas: PaasDaemon, *args: str) -> bytes:
    """``shipmate ARGS`` that must succeed; its binary standard output."""
    res = cli_bytes(paas, *args)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_unknown_services_and_names_are_refused(paas: PaasDaemon) -> None:
    res = paas.cli("postgres:info", "nosuchdb")
    assert res.returncode == 1 and "Postgres service nosuchdb does not exist" in res.stderr
    bad = paas.cli("postgres:create", "Bad_Name")
    assert bad.returncode == 1 and "Invalid service name" in bad.stderr
    assert "Bad_Name" not in paas.ok("postgres:list")


def test_redis_with_appendonly_keeps_acknowledged_writes_across_a_sigkill(
        paas: PaasDaemon) -> None:
    name = unique("cache")
    try:
        created = paas.ok("redis:create", name, timeout=900)
        assert f"=====> Redis container created: {name}" in created
        host = f"shipmate-redis-{name}"
        password = paas.ok("redis:info", name, "--dsn").strip().split(":")[2].split("@")[0]
        loop = ("i=0; while true; do i=$((i+1)); r=$(redis-cli --no-auth-warning -h " + host
                + " -a \"$PW\" RPUSH l $i) || exit 0; [ \"$r\" = \"$i\" ] || exit 0; echo $i; "
                "done")
        client = subprocess.Popen(["docker", "run", "--rm", "--network",
                                   f"shipmate-svc-redis-{name}", "-e", f"PW={password}",
                                   "shipmate/redis:7", "sh", "-c", loop],
                                  stdout=subprocess.PIPE, text=True)
        time.sleep(3)
        state = json.loads(run(["docker", "inspect", host]).stdout)[0]["State"]
        assert run(["kill", "-9", str(state["Pid"])]).returncode == 0
        out, _ = client.communicate(timeout=60)
        acked = [int(x) for x in out.split()]
        assert len(acked) > 5
        _wait_restarted(paas, "redis", name, state["StartedAt"])
        aof = paas.cli("redis:connect", name, input="CONFIG GET appendonly\n", timeout=120)
        assert aof.stdout.split() == ["appendonly", "yes"], aof.stdout + aof.stderr
        kept = paas.cli("redis:connect", name, input="LRANGE l 0 -1\n", timeout=120)
        assert kept.returncode == 0, kept.stderr
        assert set(acked) <= {int(x) for x in kept.stdout.split()}
    finally:
        paas.cli("redis:destroy", name, "--force", timeout=120)
        run(["docker", "rm", "-f", f"shipmate-redis-{name}"])
        run(["docker", "volume", "rm", "-f", f"shipmate-redis-{name}-data"])
        run(["docker", "network", "rm", f"shipmate-svc-redis-{name}"])
