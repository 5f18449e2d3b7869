"""Following the access log: new complete lines only, from the end at start, through
renames and truncation, bounded per read and per partial line; the follower records requests
and rotates the file past its size, asking nginx to reopen."""

from __future__ import annotations

import json
import os
from pathlib import Path

from shipmate.router.accesslog import Hit
from shipmate.router.logtail import HttpLogFollower, Tail
from shipmate.testing import FakeClock


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def test_it_starts_at_the_end_and_returns_complete_lines(tmp_path: Path) -> None:
    log = tmp_path / "http.log"
    log.write_bytes(b"old 1\nold 2\n")
    tail = Tail(log)
    assert tail.read() == []
    _append(log, b"one\ntw")
    assert tail.read() == [b"one"]
    _append(log, b"o\n\nthree\n")
    assert tail.read() == [b"two", b"three"]
    assert tail.read() == []


def test_a_file_that_appears_later_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "http.log"
    tail = Tail(log)
    assert tail.read() == []
    log.write_bytes(b"first\n")
    assert tail.read() == [b"first"]


def test_a_renamed_file_is_finished_then_the_new_one_followed(tmp_path: Path) -> None:
    log = tmp_path / "http.log"
    log.write_bytes(b"")
    tail = Tail(log)
    tail.read()
    _append(log, b"a\n")
    os.replace(log, tmp_path / "http.log.1")
    _append(tmp_path / "http.log.1", b"b\n")  # a worker that has not reopened yet
    assert tail.read() == [b"a", b"b"]
    log.write_bytes(b"c\n")  # nginx reopened: a new file
    _append(tmp_path / "http.log.1", b"d\n")
    assert tail.read() == [b"d"]
    assert tail.read() == []  # one more read's grace for the old file
    assert tail.read() == [b"c"]
    _append(log, b"e\n")
    assert tail.read() == [b"e"]


def test_a_truncated_file_is_read_again_from_the_top(tmp_path: Path) -> None:
    log = tmp_path / "http.log"
    log.write_bytes(b"")
    tail = Tail(log)
    tail.read()
    _append(log, b"a long line before the truncation\n")
    assert tail.read() == [b"a long line before the truncation"]
    with open(log, "r+b") as f:  # copytruncate
        f.truncate(0)
    _append(log, b"x\n")
    assert tail.read() == [b"x"]


def test_reads_and_partial_lines_are_bounded(tmp_path: Path) -> None:
    log = tmp_path / "http.log"
    log.write_bytes(b"")
    tail = Tail(log, chunk=10, max_line=8)
    tail.read()
    _append(log, b"1234\n5678\nabcd\n")
    assert tail.read() == [b"1234", b"5678"]  # ten bytes: the rest next time
    assert tail.read() == [b"abcd"]
    _append(log, b"x" * 30 + b"\nok\n")  # longer than max_line: dropped whole
    got = []
    for _ in range(6):
        got += tail.read()
    assert got == [b"ok"]


def _request(app: str, status: int) -> bytes:
    return json.dumps({"app": app, "status": status, "request_time": 0.01,
                       "upstream_time": "0.01", "bytes": 10, "msec": 1700000000.0}).encode()


async def test_the_follower_records_requests_and_rotates_past_its_size(tmp_path: Path) -> None:
    log = tmp_path / "http.log"
    log.write_bytes(b"")
    seen: list[Hit] = []
    reopened: list[bool] = []

    async def reopen() -> None:
        reopened.append(True)
        log.write_bytes(b"")  # what nginx does on SIGUSR1

    follower = HttpLogFollower(log, reopen, max_bytes=200, clock=FakeClock(),
                               sink=seen.append)
    assert await follower.poll() == 0
    _append(log, b"\n".join([_request("shop", 200), b"garbage", _request("shop", 503)])
            + b"\n")
    assert await follower.poll() == 2
    assert [(h.app, h.status) for h in seen] == [("shop", 200), ("shop", 503)]
    assert follower.skipped == 1 and reopened == [True]  # 200+ bytes: rotated
    assert (tmp_path / "http.log.1").exists() and log.stat().st_size == 0
    _append(log, _request("blog", 200) + b"\n")
    for _ in range(3):
        await follower.poll()
    assert [h.app for h in seen] == ["shop", "shop", "blog"]
