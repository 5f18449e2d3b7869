"""Journal files: bounded by copy-truncate rotation, tail across generations, follow."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from shipmate.agent.journal import Journal, last_lines
from shipmate.errors import NotFoundError


def test_last_lines() -> None:
    assert last_lines(b"a\nb\nc\n", 2) == ["b", "c"]
    assert last_lines(b"a\nb\npartial", 2) == ["b", "partial"]
    assert last_lines(b"a\n", 0) == []


def test_rotation_bounds_the_journal_and_tail_spans_generations(tmp_path: Path) -> None:
    j = Journal(tmp_path, max_bytes=100, hostname="h")
    fd = j.open_append("u.service")  # as a process would hold it
    try:
        for i in range(60):
            os.write(fd, f"line {i:02d}\n".encode())
            j.rotate_if_needed("u.service")
    finally:
        os.close(fd)
    assert j.path("u.service").stat().st_size <= 100 + 8
    rotated = j.path("u.service").with_name("u.service.log.1")
    assert rotated.stat().st_size <= 100 + 8
    assert j.tail("u.service", 3) == ["line 57", "line 58", "line 59"]
    assert len(j.tail("u.service", 1000)) < 30  # older lines are gone: bounded


def test_note_writes_a_supervisor_line(tmp_path: Path) -> None:
    j = Journal(tmp_path, hostname="h")
    j.note("u.service", "Started u.service.")
    (line,) = j.tail("u.service")
    assert line.endswith(f" h shipmate[{os.getpid()}]: Started u.service.")


def test_tail_of_unknown_unit_says_where_to_look(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"no journal for x\.service"):
        Journal(tmp_path).tail("x.service")


async def test_follow_yields_new_lines_and_survives_rotation(tmp_path: Path) -> None:
    j = Journal(tmp_path, max_bytes=30, hostname="h")
    j.path("u.service").write_text("old\n")
    seen: list[str] = []

    async def reader() -> None:
        async for line in j.follow("u.service", 5):
            seen.append(line)

    async def saw(line: str) -> None:  # each step waits for what it caused (bounded)
        async with asyncio.timeout(10):
            while not seen or seen[-1] != line:
                await asyncio.sleep(0.01)

    task = asyncio.create_task(reader())
    await saw("old")  # the reader follows the file now
    with open(j.path("u.service"), "a") as fh:
        fh.write("new 1\nnew 2\n")
    await saw("new 2")
    with open(j.path("u.service"), "a") as fh:
        fh.write("x" * 40 + "\n")
    await saw("x" * 40)
    j.rotate_if_needed("u.service")
    with open(j.path("u.service"), "a") as fh:
        fh.write("after\n")
    await saw("after")
    task.cancel()
    assert seen == ["old", "new 1", "new 2", "x" * 40, "after"]
