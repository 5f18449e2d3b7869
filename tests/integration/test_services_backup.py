"""Backups, host ports and Redis imports of real services (a light daemon of their own).

A backup written by ``postgres:backup`` is a ``pg_dump -Fc`` file named with the UTC time,
readable by its owner only, that ``postgres:import`` restores into a new service with
identical rows; a schedule shows in ``postgres:info``. ``postgres:expose`` publishes the
server on a host port (the data stays), ``unexpose`` takes it away. A Redis export imported
into a new service replaces its keys with identical ones; a file that is not an RDB dump
is refused and changes nothing.
"""

from __future__ import annotations

import json
import re
import socket
import stat
from pathlib import Path

import pytest

from tests.integration.paas_helpers import run, unique
from tests.integration.service_helpers import Daemon, daemon, forget

pytestmark = pytest.mark.integration
__all__ = ["daemon"]  # the fixture, imported for pytest
ROWS = "\\pset tuples_only on\nSELECT id, note FROM t ORDER BY id;"


def test_a_backup_file_restores_and_an_exposed_port_answers(daemon: Daemon,
                                                            tmp_path: Path) -> None:
    name, copy = unique("bk"), unique("bkcopy")
    backups = tmp_path / "backups"
    try:
        daemon.ok("postgres:create", name, timeout=900)
        daemon.ok("postgres:connect", name, input="CREATE TABLE t (id int PRIMARY KEY, note "
                  "text); INSERT INTO t SELECT i, 'row ' || i FROM generate_series(1, 500) i;")
        out = daemon.ok("postgres:backup", name, str(backups))
        (path,) = backups.iterdir()
        assert re.fullmatch(rf"postgres-{name}-\d{{8}}T\d{{6}}Z\.dump", path.name)
        assert f"=====> Backup written: {path}" in out
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_bytes().startswith(b"PGDMP")
        daemon.ok("postgres:create", copy, timeout=900)
        imported = daemon.binary("postgres:import", copy, data=path.read_bytes())
        assert imported.returncode == 0, imported.stdout + imported.stderr
        assert daemon.ok("postgres:connect", copy, input=ROWS) == \
            daemon.ok("postgres:connect", name, input=ROWS)
        assert "row 500" in daemon.ok("postgres:connect", copy, input=ROWS)

        bad = daemon.cli("postgres:backup", name, "/etc/x")
        assert bad.returncode == 1 and "system directory" in bad.stderr
        daemon.ok("postgres:backup-schedule", name, "0 3 * * *", str(backups), "--keep", "3")
        assert daemon.ok("postgres:info", name, "--backup-schedule").strip() == \
            f"0 3 * * * to {backups} (keep 3)"
        refused = daemon.cli("postgres:backup-schedule", name, "0 25 * * *", str(backups))
        assert refused.returncode == 1 and " !     " in refused.stderr
        daemon.ok("postgres:backup-unschedule", name)
        assert daemon.ok("postgres:info", name, "--backup-schedule").strip() == "-"

        daemon.ok("postgres:expose", name, timeout=300)
        ports = daemon.ok("postgres:info", name, "--exposed-ports").strip()
        port = int(ports.split("->")[1])
        assert ports == f"5432->{port}"
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass
        assert "row 500" in daemon.ok("postgres:connect", name, input=ROWS)  # data kept
        taken = daemon.cli("postgres:expose", copy, str(port))
        assert taken.returncode == 1 and "taken by another service" in taken.stderr
        daemon.ok("postgres:unexpose", name, timeout=300)
        (info,) = json.loads(run(["docker", "inspect", f"shipmate-postgres-{name}"]).stdout)
        assert not any(info["NetworkSettings"]["Ports"].values())
        assert daemon.ok("postgres:info", name, "--exposed-ports").strip() == "-"
    finally:
        forget(daemon, "postgres", name)
        forget(daemon, "postgres", copy)


def _redis(daemon: Daemon, name: str, commands: str) -> str:
    return daemon.ok("redis:connect", name, input=commands)


def test_a_redis_export_imported_into_a_new_service_gives_identical_keys(
        daemon: Daemon) -> None:
    name, copy = unique("rsrc"), unique("rdst")
    dump = "KEYS *\nGET s1\nGET s2\nLRANGE l 0 -1\nHGETALL h\nSMEMBERS set\n"
    try:
        daemon.ok("redis:create", name, timeout=900)
        _redis(daemon, name, "SET s1 one\nSET s2 two\nRPUSH l a b c\nHSET h f v\n"
               "SADD set x\n")
        raw = daemon.binary("redis:export", name)
        assert raw.returncode == 0 and raw.stdout.startswith(b"REDIS"), raw.stderr
        daemon.ok("redis:create", copy, timeout=900)
        _redis(daemon, copy, "SET old gone\n")
        junk = daemon.binary("redis:import", copy, data=b"not a dump")
        assert junk.returncode == 1 and b"not an RDB dump" in junk.stderr
        assert _redis(daemon, copy, "GET old\n").strip() == "gone"  # nothing changed
        imported = daemon.binary("redis:import", copy, data=raw.stdout)
        assert imported.returncode == 0, imported.stdout + imported.stderr
        assert b"=====> Imported 5 keys into" in imported.stdout
        source = _redis(daemon, name, dump).split("\n")
        got = _redis(daemon, copy, dump).split("\n")
        n = 5  # KEYS * answers in no fixed order
        assert sorted(got[:n]) == sorted(source[:n]) == ["h", "l", "s1", "s2", "set"]
        assert got[n:] == source[n:]
        # it is the AOF that holds the import: it survives a restart of the service
        daemon.ok("redis:restart", copy, timeout=300)
        assert sorted(_redis(daemon, copy, "KEYS *\n").split()) == ["h", "l", "s1", "s2", "set"]
        listing = run(["docker", "exec", f"shipmate-redis-{copy}", "ls", "/data",
                       "/data/before-import"])
        assert "appendonlydir" in listing.stdout, listing.stdout + listing.stderr
    finally:
        forget(daemon, "redis", name)
        forget(daemon, "redis", copy)


