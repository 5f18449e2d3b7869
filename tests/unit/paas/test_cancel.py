"""Bounded, cancellable deploys: ps:stop and apps:destroy cancel a running deploy and win."""

import asyncio
from pathlib import Path

import pytest

from shipmate import config
from shipmate.errors import ConflictError, ValidationError
from shipmate.paas.cancel import DeployCancelled, RunningDeploys
from shipmate.paas.service import Paas
from shipmate.testing.store import memory_store


async def _paas(tmp_path: Path) -> Paas:
    paas = Paas(await memory_store(), None, config.load({}, state_dir=tmp_path))
    await paas.state.create_app("app1")
    return paas


def _hold_lock(paas: Paas, started: asyncio.Event, cleaned: list[str]) -> asyncio.Task[None]:
    """A deploy that holds the app's lock forever (a check wait of 10^8 s, before bounds)."""

    async def deploy() -> None:
        with paas.running.track("app1"):
            async with paas.deployer.lock("app1"):
                started.set()
                try:
                    await asyncio.sleep(10**8)
                finally:
                    cleaned.append("new instances removed")

    return asyncio.create_task(deploy())


async def test_destroy_cancels_a_running_deploy_and_wins(tmp_path: Path) -> None:
    paas = await _paas(tmp_path)
    started, cleaned = asyncio.Event(), []
    task = _hold_lock(paas, started, cleaned)
    await started.wait()
    # Without cancellation the lock is held: another deploy is refused.
    with pytest.raises(ConflictError, match="currently being deployed"):
        async with paas.deployer.lock("app1"):
            pass
    lines: list[str] = []
    await asyncio.wait_for(paas.destroy("app1", lines.append), 10)
    assert lines[0] == "-----> Cancelled the running deploy of app1"
    assert cleaned == ["new instances removed"]
    with pytest.raises(DeployCancelled, match="cancelled by apps:destroy"):
        await task
    assert not await paas.state.exists("app1")
    assert paas.running.running("app1") == 0


async def test_ps_stop_cancels_a_running_deploy(tmp_path: Path) -> None:
    paas = await _paas(tmp_path)
    started, cleaned = asyncio.Event(), []
    task = _hold_lock(paas, started, cleaned)
    await started.wait()
    lines: list[str] = []
    await asyncio.wait_for(paas.stop("app1", lines.append), 10)
    assert lines == ["-----> Cancelled the running deploy of app1",
                     "-----> Stopped 0 instance(s) of app1"]
    with pytest.raises(DeployCancelled, match="ps:stop"):
        await task


async def test_a_cancel_from_elsewhere_stays_a_cancel() -> None:
    running = RunningDeploys()

    async def deploy() -> None:
        with running.track("app1"):
            await asyncio.sleep(10**8)

    task = asyncio.create_task(deploy())
    await asyncio.sleep(0)
    task.cancel()  # e.g. the daemon shutting down: not turned into a deploy error
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await running.cancel("app1", "nothing left") == 0


@pytest.mark.parametrize(("key", "value", "why"), [
    ("wait", 100000000, "out of range"), ("wait", -1, "out of range"),
    ("attempts", 101, "out of range"), ("attempts", 0, "out of range"),
    ("attempts", 2.5, "out of range"), ("timeout", 0.5, "out of range"),
    ("timeout", "5", "must be a number"), ("wait", True, "must be a number"),
    ("color", 1, "unknown checks property"),
])
async def test_health_check_settings_are_bounded(tmp_path: Path, key: str, value: object,
                                                 why: str) -> None:
    paas = await _paas(tmp_path)
    with pytest.raises(ValidationError, match=why):
        await paas.change_checks("app1", {"set": {key: value}})
    assert await paas.state.checks("app1") == {"disabled": []}


async def test_health_check_settings_within_bounds(tmp_path: Path) -> None:
    paas = await _paas(tmp_path)
    got = await paas.change_checks("app1", {"set": {"wait": 600, "attempts": 100,
                                                    "timeout": 1}})
    assert (got["wait"], got["attempts"], got["timeout"]) == (600, 100, 1)
