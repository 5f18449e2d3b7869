"""The engine contract: :class:`~shipmate.testing.FakeEngine` and
:class:`~shipmate.engine.docker.DockerEngine` must both pass all of these, so that what unit
tests learn from the fake holds on dockerd.

The test functions take a ``kit`` fixture (:class:`EngineKit`): the engine, an image to run,
and how a container of a test does what it is told (print lines, exit, pass or fail its
health check). A backend's suite imports them into a collected module with its own kit:
``tests/unit/engine/test_engine_contract.py`` (FakeEngine, whose kit plays the script
through the fake's hooks) and ``tests/integration/test_engine_contract.py`` (dockerd, whose
kit writes the script as a shell command).

What the :class:`~shipmate.engine.base.Engine` protocol declares is covered: create, start,
stop, remove, rename, update, inspect, list by labels, logs (tail, follow), wait, exec and
health. Exit codes after ``stop`` are left out: they depend on the program (SIGTERM or
SIGKILL), which only Docker runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence

import pytest

from shipmate.engine.base import ContainerInfo, Engine
from shipmate.errors import EngineConflictError, EngineError, NotFoundError
from shipmate.spec.container import (
    MANAGED_LABEL,
    SPEC_HASH_LABEL,
    ContainerSpec,
    HealthCheck,
    PortMapping,
    make_spec,
    spec_hash,
)


@dataclasses.dataclass(frozen=True)
class Script:
    """What a test container does once started: print ``prints`` (one line each), then exit
    with ``exit_code``, or keep running when it is None; its health check passes or not."""

    prints: tuple[str, ...] = ()
    exit_code: int | None = None
    healthy: bool | None = None  # None: no health check


@dataclasses.dataclass
class EngineKit:
    """What a backend gives the contract suite.

    ``command``: the container command that carries out a script (Docker), and ``play``:
    what to do once it started (FakeEngine: emit its lines, exit). ``labels`` go on every
    container, so the backend's fixture can clean up after the test.
    """

    engine: Engine
    image: str
    labels: Mapping[str, str]
    command: Callable[[Script], list[str]]
    play: Callable[[str, Script], Awaitable[None]]
    scripts: dict[str, Script] = dataclasses.field(default_factory=dict)

    def spec(self, prefix: str, script: Script | None = None, *,
             labels: Mapping[str, str] | None = None,
             ports: Sequence[PortMapping] = ()) -> ContainerSpec:
        """A uniquely named container spec that runs ``script``."""
        name = f"sm-contract-{prefix}-{uuid.uuid4().hex[:8]}"
        script = script or Script()
        health = None
        if script.healthy is not None:
            health = HealthCheck(("true",) if script.healthy else ("false",),
                                 interval=0.5, timeout=2, retries=1)
        self.scripts[name] = script
        return make_spec(name, self.image, command=self.command(script), health=health,
                         labels={**self.labels, **(labels or {})}, ports=list(ports),
                         restart="no", env={"GREETING": "hello world", "EMPTY": ""})

    async def run(self, spec: ContainerSpec) -> str:
        """Create and start ``spec``, then let its script play; the container ID."""
        cid = await self.engine.create(spec)
        await self.engine.start(cid)
        await self.play(cid, self.scripts[spec.name])
        return cid


async def eventually(probe: Callable[[], Awaitable[bool]], what: str,
                     timeout: float = 20.0) -> None:
    """Poll ``probe`` (real time, bounded) until it holds: Docker needs a moment for health
    checks and exits that the fake reports at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await probe():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout:g}s")
        await asyncio.sleep(0.1)


async def _inspect(kit: EngineKit, key: str) -> ContainerInfo:
    info = await kit.engine.inspect(key)
    assert info is not None, key
    return info


# create, inspect, list -------------------------------------------------------------------


async def test_create_labels_the_container_and_inspect_and_list_find_it(kit: EngineKit) -> None:
    spec = kit.spec("create", labels={"app": "contract"})
    cid = await kit.engine.create(spec)
    info = await _inspect(kit, spec.name)
    assert (info.id, info.name, info.state, info.image) == (cid, spec.name, "created", kit.image)
    assert info.image_id.startswith("sha256:")
    assert info.labels[SPEC_HASH_LABEL] == spec_hash(spec)
    assert info.labels[MANAGED_LABEL] == "1" and info.labels["app"] == "contract"
    assert info.env["GREETING"] == "hello world" and info.env["EMPTY"] == ""
    assert not info.running and info.pid == 0 and info.ports == () and info.health is None
    assert (await _inspect(kit, cid)).name == spec.name  # by ID as well as by name
    listed = await kit.engine.list({**kit.labels, "app": "contract"})
    assert [c.id for c in listed] == [cid]
    assert await kit.engine.list({**kit.labels, "app": "contract"}, all=False) == []
    assert await kit.engine.list({**kit.labels, "app": "other"}) == []


async def test_list_matches_every_given_label(kit: EngineKit) -> None:
    a = await kit.engine.create(kit.spec("la", labels={"tier": "web", "app": "one"}))
    b = await kit.engine.create(kit.spec("lb", labels={"tier": "web", "app": "two"}))
    assert {c.id for c in await kit.engine.list({**kit.labels, "tier": "web"})} == {a, b}
    assert [c.id for c in await kit.engine.list({**kit.labels, "tier": "web", "app": "two"})
            ] == [b]


# start, stop, remove ---------------------------------------------------------------------


async def test_start_runs_and_binds_ports_stop_unbinds_them(kit: EngineKit) -> None:
    spec = kit.spec("ports", ports=[PortMapping(8000, 0, "127.0.0.1"),
                                    PortMapping(5353, 0, "127.0.0.1", "udp")])
    cid = await kit.run(spec)
    info = await _inspect(kit, cid)
    assert info.running and info.state == "running" and info.pid > 0 and info.ip_address
    assert info.started_at
    bound = {(p.container_port, p.protocol): p for p in info.ports}
    assert set(bound) == {(8000, "tcp"), (5353, "udp")}
    assert all(p.host_ip == "127.0.0.1" and p.host_port > 0 for p in bound.values())
    assert [c.id for c in await kit.engine.list(kit.labels, all=False)] == [cid]
    await kit.engine.start(cid)  # starting a running container is fine
    await kit.engine.stop(cid, timeout=1)
    await kit.engine.stop(cid, timeout=1)  # so is stopping a stopped one
    info = await _inspect(kit, cid)
    assert (info.state, info.running, info.pid, info.ports) == ("exited", False, 0, ())
    assert await kit.engine.list(kit.labels, all=False) == []
    await kit.engine.start(cid)  # a stopped container starts again
    assert (await _inspect(kit, cid)).running


async def test_remove_of_a_running_container_needs_force(kit: EngineKit) -> None:
    spec = kit.spec("remove")
    cid = await kit.run(spec)
    with pytest.raises(EngineConflictError):
        await kit.engine.remove(cid)
    assert (await _inspect(kit, cid)).running
    await kit.engine.remove(cid, force=True)
    assert await kit.engine.inspect(cid) is None
    assert await kit.engine.inspect(spec.name) is None
    await kit.engine.remove(cid)  # a missing one is fine
    await kit.engine.remove(spec.name, force=True)


async def test_a_stopped_container_is_removed_without_force(kit: EngineKit) -> None:
    cid = await kit.run(kit.spec("stopped", Script(exit_code=0)))
    assert await kit.engine.wait(cid) == 0
    await kit.engine.remove(cid)
    assert await kit.engine.inspect(cid) is None


# names and missing things ----------------------------------------------------------------


async def test_names_are_unique_and_rename_moves_one(kit: EngineKit) -> None:
    spec = kit.spec("name")
    cid = await kit.engine.create(spec)
    with pytest.raises(EngineConflictError):
        await kit.engine.create(spec)
    other = kit.spec("other")
    await kit.engine.create(other)
    with pytest.raises(EngineConflictError):
        await kit.engine.rename(cid, other.name)
    new_name = spec.name + "-renamed"
    await kit.engine.rename(cid, new_name)
    assert (await _inspect(kit, new_name)).id == cid
    assert await kit.engine.inspect(spec.name) is None
    assert (await kit.engine.create(spec)) != cid  # the old name is free again


async def test_missing_containers_and_images_are_not_found(kit: EngineKit) -> None:
    missing = f"sm-contract-missing-{uuid.uuid4().hex[:8]}"
    assert await kit.engine.inspect(missing) is None
    for call in (kit.engine.start(missing), kit.engine.stop(missing),
                 kit.engine.rename(missing, missing + "-x"),
                 kit.engine.update(missing, restart="always"), kit.engine.wait(missing)):
        with pytest.raises(NotFoundError):
            await call
    with pytest.raises(NotFoundError):
        await kit.engine.create(make_spec(missing, "shipmate/no-such-image:1",
                                          labels=dict(kit.labels)))
    assert await kit.engine.image("shipmate/no-such-image:1") is None
    assert await kit.engine.inspect(missing) is None


# logs and wait ---------------------------------------------------------------------------


async def test_follow_delivers_every_line_of_a_container_that_prints_and_exits(
        kit: EngineKit) -> None:
    script = Script(prints=("one", "two", "three"), exit_code=3)
    cid = await kit.run(kit.spec("follow", script))
    lines = [line async for line in kit.engine.logs(cid, follow=True)]
    assert lines == ["one", "two", "three"]
    assert await kit.engine.wait(cid) == 3
    info = await _inspect(kit, cid)
    assert (info.state, info.exit_code) == ("exited", 3)


async def test_logs_of_an_exited_container_tail_and_follow(kit: EngineKit) -> None:
    script = Script(prints=tuple(f"line {i}" for i in range(1, 6)), exit_code=0)
    cid = await kit.run(kit.spec("tail", script))
    assert await kit.engine.wait(cid) == 0
    assert [line async for line in kit.engine.logs(cid)] == list(script.prints)
    assert [line async for line in kit.engine.logs(cid, tail=2)] == ["line 4", "line 5"]
    followed = [line async for line in kit.engine.logs(cid, follow=True, tail=1)]
    assert followed == ["line 5"]  # follow on a stopped container ends with its output


async def test_wait_returns_the_exit_code(kit: EngineKit) -> None:
    cid = await kit.run(kit.spec("wait", Script(exit_code=7)))
    assert await kit.engine.wait(cid) == 7
    assert await kit.engine.wait(cid) == 7  # again, once it has stopped


# exec, health, update --------------------------------------------------------------------


async def test_exec_needs_a_running_container(kit: EngineKit) -> None:
    cid = await kit.run(kit.spec("exec"))
    assert (await kit.engine.exec(cid, ["true"]))[0] == 0
    await kit.engine.stop(cid, timeout=1)
    with pytest.raises(EngineConflictError):
        await kit.engine.exec(cid, ["true"])


@pytest.mark.parametrize("healthy", [True, False])
async def test_health_follows_the_check(kit: EngineKit, healthy: bool) -> None:
    cid = await kit.run(kit.spec("health", Script(healthy=healthy)))
    want = "healthy" if healthy else "unhealthy"

    async def reached() -> bool:
        health = (await _inspect(kit, cid)).health
        assert health in ("starting", want), health
        return health == want

    await eventually(reached, f"health {want}")
    no_check = await kit.run(kit.spec("nocheck"))
    assert (await _inspect(kit, no_check)).health is None


async def test_update_changes_the_restart_policy_in_place(kit: EngineKit) -> None:
    cid = await kit.run(kit.spec("update"))
    before = await _inspect(kit, cid)
    await kit.engine.update(cid, restart="unless-stopped")
    after = await _inspect(kit, cid)
    assert after.raw["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert (after.id, after.pid, after.started_at) == (before.id, before.pid, before.started_at)
    with pytest.raises(EngineError):
        await kit.engine.update(cid, restart="sometimes")
    policy = (await _inspect(kit, cid)).raw["HostConfig"]["RestartPolicy"]["Name"]
    assert policy == "unless-stopped"
