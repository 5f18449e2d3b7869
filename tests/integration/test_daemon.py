"""The daemon for real: up / status / down, crash durability, clear errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.integration.daemon_helpers import daemon_env, pids_of_daemon, shipmate, wait_status

pytestmark = pytest.mark.integration


def test_up_status_down_leaves_nothing_running(tmp_path) -> None:
    env = daemon_env(tmp_path)
    up = shipmate(env, "up")
    assert up.returncode == 0, up.stderr
    assert up.stdout.startswith("-----> Starting Shipmate daemon")
    try:
        status = wait_status(env)
        assert status["daemon"]["machine_id"] == "test-m1"
        assert status["store"]["backend"] == "sqlite"
        assert status["engine"]["version"], status["engine"]
        assert {c["name"] for c in status["components"]} >= {"agent", "scheduler"}
        assert pids_of_daemon(tmp_path) == [status["daemon"]["pid"]]
        again = shipmate(env, "up")
        assert "already running" in again.stdout
    finally:
        down = shipmate(env, "down")
    assert down.returncode == 0, down.stderr
    assert "Stopped Shipmate daemon" in down.stdout
    assert pids_of_daemon(tmp_path) == []
    assert not (tmp_path / "shipmate.sock").exists()
    assert shipmate(env, "down").stdout.startswith("-----> Shipmate daemon is not running")


def _put_stream(sock: str, n: int) -> subprocess.Popen[str]:
    """A client that PUTs keys through the daemon API and prints each acknowledged one."""
    code = f"""
import asyncio, aiohttp, sys
async def main():
    conn = aiohttp.UnixConnector(path={sock!r})
    async with aiohttp.ClientSession(connector=conn) as s:
        for i in range({n}):
            async with s.put(f"http://d/v1/kv/ack/{{i:06d}}", data=str(i).encode()) as r:
                if r.status != 200:
                    return
            print(i, flush=True)
asyncio.run(main())
"""
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            stderr=subprocess.DEVNULL)


def test_sigkill_during_writes_loses_no_acknowledged_write(tmp_path) -> None:
    env = daemon_env(tmp_path)
    daemon = subprocess.Popen([sys.executable, "-m", "shipmate.cli.main", "daemon"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_status(env)
        writer = _put_stream(str(tmp_path / "shipmate.sock"), 100000)
        acked: list[int] = []
        assert writer.stdout is not None
        deadline = time.monotonic() + 30
        while len(acked) < 300 and time.monotonic() < deadline:
            line = writer.stdout.readline()
            if not line:
                break
            acked.append(int(line))
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait(10)
        rest, _ = writer.communicate(timeout=30)
        acked += [int(x) for x in rest.split()]
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert len(acked) >= 300
    (tmp_path / "shipmate.sock").unlink(missing_ok=True)
    daemon = subprocess.Popen([sys.executable, "-m", "shipmate.cli.main", "daemon"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_status(env)
        got = shipmate(env, "--format", "json", "status")
        assert got.returncode == 0
        import asyncio

        import aiohttp

        async def read_all() -> dict[str, str]:
            conn = aiohttp.UnixConnector(path=str(tmp_path / "shipmate.sock"))
            async with aiohttp.ClientSession(connector=conn) as s, s.get(
                    "http://d/v1/kv/ack/?prefix=1") as r:
                data = await r.json()
            return {kv["key"]: kv["value"] for kv in data["kvs"]}

        stored = asyncio.run(read_all())
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
    missing = [i for i in acked if stored.get(f"/ack/{i:06d}") != str(i)]
    assert missing == [], f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"


def test_no_docker_engine_says_how_to_start_one(tmp_path) -> None:
    env = daemon_env(tmp_path, SHIPMATE_DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock")
    assert shipmate(env, "up").returncode == 0
    try:
        status = wait_status(env)
        assert status["engine"]["version"] is None
        assert "dockerd" in status["engine"]["error"]
        text = shipmate(env, "status")
        assert "Docker engine:" in text.stdout and "dockerd" in text.stdout
        images = shipmate(env, "images:list")
        assert images.returncode == 1
        assert images.stderr.startswith(" !     ") and "dockerd" in images.stderr
        assert "Traceback" not in images.stderr
    finally:
        shipmate(env, "down")


def test_status_json_is_machine_readable(tmp_path) -> None:
    env = daemon_env(tmp_path)
    assert shipmate(env, "up").returncode == 0
    try:
        out = shipmate(env, "status", "--format", "json")
        data = json.loads(out.stdout)
        assert set(data) == {"daemon", "store", "engine", "components"}
    finally:
        shipmate(env, "down")
