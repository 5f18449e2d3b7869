"""DockerEngine.logs(follow=True) delivers a stopped container's last lines even when
Docker ends the follow too early (20.10 did, now and then, for a container that printed and
exited at once). docker-py's client is replaced by a stub that answers as dockerd does."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from shipmate.engine.base import ContainerInfo
from shipmate.engine.docker import DockerEngine
from shipmate.engine.docker_streams import LogStamp, split_stamp

STORED = [
    "2024-05-01T12:00:00.5Z first",
    "2024-05-01T12:00:01.000000001Z second",
    "2024-05-01T12:00:01.1Z third",
    "2024-05-01T12:00:02Z fourth",
]


@dataclasses.dataclass
class StubApi:
    """docker-py's ``APIClient.logs`` over a stored log; a follow delivers ``followed`` lines
    of it and ends (as Docker does when the container stops)."""

    followed: int
    calls: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def logs(self, container: str, *, stream: bool, follow: bool, timestamps: bool,
             tail: int | str, since: int | None) -> Iterator[bytes]:
        assert stream and timestamps
        self.calls.append({"follow": follow, "tail": tail, "since": since})
        lines = STORED[:self.followed] if follow else STORED
        if since is not None:
            lines = [line for line in lines if split_stamp(line)[0].epoch >= since]
        if tail != "all":
            assert isinstance(tail, int)
            lines = lines[len(lines) - tail:]
        return iter([("\n".join(lines) + "\n").encode()] if lines else [])

    def close(self) -> None:
        pass


def engine_with(api: StubApi, *, running: bool) -> DockerEngine:
    engine = DockerEngine("unix:///nonexistent/docker.sock")
    engine._api = api
    state = "running" if running else "exited"

    async def inspect(container: str) -> ContainerInfo:
        return ContainerInfo(container, "c", "img", "sha256:x", state, {}, {})

    engine.inspect = inspect  # type: ignore[method-assign]
    return engine


@pytest.mark.parametrize("followed", [0, 1, 2, 4])
async def test_follow_of_a_stopped_container_ends_with_its_last_line(followed: int) -> None:
    api = StubApi(followed)
    engine = engine_with(api, running=False)
    try:
        lines = [line async for line in engine.logs("c", follow=True)]
    finally:
        await engine.close()
    assert lines == ["first", "second", "third", "fourth"]
    assert len(api.calls) == 2 and not api.calls[1]["follow"]


async def test_the_tail_of_a_follow_is_kept() -> None:
    api = StubApi(0)  # the follow ended before it sent anything
    engine = engine_with(api, running=False)
    try:
        assert [line async for line in engine.logs("c", follow=True, tail=2)] == [
            "third", "fourth"]
    finally:
        await engine.close()


async def test_a_follow_that_ends_while_the_container_runs_adds_nothing() -> None:
    api = StubApi(2)
    engine = engine_with(api, running=True)
    try:
        assert [line async for line in engine.logs("c", follow=True)] == ["first", "second"]
    finally:
        await engine.close()
    assert len(api.calls) == 1


async def test_plain_logs_are_read_once() -> None:
    api = StubApi(0)
    engine = engine_with(api, running=False)
    try:
        assert [line async for line in engine.logs("c", tail=1)] == ["fourth"]
    finally:
        await engine.close()
    assert api.calls == [{"follow": False, "tail": 1, "since": None}]


def test_stamps_compare_to_the_nanosecond_whatever_their_digits() -> None:
    stamps = [split_stamp(line)[0] for line in STORED]
    assert stamps == sorted(stamps)
    assert split_stamp("2024-05-01T12:00:01.1Z x")[0] == LogStamp("2024-05-01T12:00:01",
                                                                   100_000_000)
    assert split_stamp("2024-05-01T12:00:02Z ") == (LogStamp("2024-05-01T12:00:02", 0), "")
    assert split_stamp("no stamp here")[1] == "no stamp here"
    assert stamps[0].epoch == 1714564800
