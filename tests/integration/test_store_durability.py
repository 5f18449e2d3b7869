"""An acknowledged write survives SIGKILL: the SQLite store fsyncs before ``put`` returns.

A child process writes keys in a loop and prints each key only after its ``put`` returned; we
kill it mid-stream with SIGKILL, reopen the store and look for every acknowledged key.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shipmate.store.sqlite import SqliteStore

pytestmark = pytest.mark.integration

WRITER = """
import asyncio, sys
from shipmate.store.sqlite import SqliteStore

async def main(path):
    store = await SqliteStore.open(path)
    print("ready", flush=True)
    i = 0
    while True:
        # Several writes in flight at once, like a busy daemon.
        batch = range(i, i + 4)
        await asyncio.gather(*(store.put(f"/d/{n:06d}", str(n)) for n in batch))
        for n in batch:
            print(n, flush=True)
        i += 4

asyncio.run(main(sys.argv[1]))
"""


def _read_acks(proc: subprocess.Popen[str], want: int, timeout: float) -> list[int]:
    assert proc.stdout is not None
    acks: list[int] = []
    deadline = time.monotonic() + timeout
    while len(acks) < want and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.strip().isdigit():
            acks.append(int(line))
    return acks


@pytest.mark.parametrize("kill_after", [50, 400])
def test_acknowledged_writes_survive_sigkill(tmp_path: Path, kill_after: int) -> None:
    path = tmp_path / "store.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        acks = _read_acks(proc, kill_after, timeout=60)
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: writes are in flight
        assert proc.stdout is not None
        rest, _ = proc.communicate(timeout=10)  # acknowledgements already in the pipe count too
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    acks += [int(line) for line in rest.split() if line.isdigit()]
    assert proc.returncode == -signal.SIGKILL
    assert len(acks) >= kill_after, "the writer did not get far enough"

    missing, found = asyncio.run(_check(path, acks))
    assert missing == [], f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
    assert found >= len(acks)


async def _check(path: Path, acks: list[int]) -> tuple[list[int], int]:
    store = await SqliteStore.open(path)  # the dead writer's lock is gone with it
    try:
        kvs, rev = await store.range("/d/")
        present = {kv.key: kv.value for kv in kvs}
        missing = [n for n in acks if present.get(f"/d/{n:06d}") != str(n).encode()]
        # Revisions are consistent after recovery: one per write, nothing torn.
        assert rev == 1 + len(kvs)
        return missing, len(kvs)
    finally:
        await store.close()
