"""Links change with compare-and-swap: concurrent links lose no update, and a link racing a
destroy never leaves a destroyed service linked (memory store; the race is made exact by
running the competing change right before a transaction commits)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from shipmate import config
from shipmate.errors import ConflictError
from shipmate.paas.attach import AttachmentStore
from shipmate.paas.service import Paas
from shipmate.services.manager import ServiceManager
from shipmate.services.model import Service, unit_text
from shipmate.store.sqlite import SqliteStore
from shipmate.testing.store import memory_store

PG = Service("postgres", "db", "15", "ab" * 16, 1.0, "m1")
OTHER = Service("postgres", "other", "15", "cd" * 16, 1.0, "m1")


def before_next_txn(store: SqliteStore, competitor: Callable[[], Awaitable[Any]]) -> list[str]:
    """Run ``competitor`` right before the store's next transaction (once); what it did
    (its outcome, or the error it raised) is appended to the returned list."""
    real = store.txn
    outcome: list[str] = []

    async def txn(*args: Any, **kwargs: Any) -> Any:
        if not outcome:
            store.txn = real  # type: ignore[method-assign]
            try:
                await competitor()
                outcome.append("done")
            except ConflictError as exc:
                outcome.append(str(exc))
        return await real(*args, **kwargs)

    store.txn = txn  # type: ignore[method-assign]
    return outcome


async def _setup(tmp_path: Path, *apps: str) -> tuple[SqliteStore, ServiceManager]:
    store = await memory_store()
    paas = Paas(store, None, config.load({}, state_dir=tmp_path))
    manager = ServiceManager(store, None, paas.config, paas)
    for service in (PG, OTHER):
        await manager.state.create(service)
        await manager.registry.submit(service.unit, unit_text(service))
    for app in apps:
        await paas.state.create_app(app)
    return store, manager


async def test_two_concurrent_links_of_different_apps_both_hold(tmp_path: Path) -> None:
    store, manager = await _setup(tmp_path, "web", "api")
    other = before_next_txn(store, lambda: manager.state.link(PG, "api", "DATABASE_URL"))
    await manager.state.link(PG, "web", "DATABASE_URL")
    assert other == ["done"]
    assert await manager.state.links(PG) == {"web": "DATABASE_URL", "api": "DATABASE_URL"}


async def test_two_concurrent_links_of_one_app_lose_neither(tmp_path: Path) -> None:
    store, manager = await _setup(tmp_path, "web")
    other = before_next_txn(store, lambda: manager.state.link(OTHER, "web", "OTHER_URL"))
    await manager.state.link(PG, "web", "DATABASE_URL")
    assert other == ["done"]
    links = (await AttachmentStore(store).read("web")).links
    assert sorted(links) == ["postgres:db", "postgres:other"]
    assert await manager.state.links(OTHER) == {"web": "OTHER_URL"}


async def test_a_link_committed_during_a_destroy_stops_the_destroy(tmp_path: Path) -> None:
    store, manager = await _setup(tmp_path, "web")
    link = before_next_txn(store, lambda: manager.state.link(PG, "web", "DATABASE_URL"))
    lines: list[str] = []
    with pytest.raises(ConflictError, match="Cannot delete linked service db: linked to web"):
        await manager.destroy("postgres", "db", lines.append)
    assert link == ["done"] and lines == []
    assert await manager.registry.unit(PG.unit) is not None  # nothing went
    assert await manager.state.links(await manager.state.get("postgres", "db")) == {
        "web": "DATABASE_URL"}


async def test_a_link_after_a_destroy_began_is_refused(tmp_path: Path) -> None:
    store, manager = await _setup(tmp_path, "web")
    destroy = before_next_txn(store, lambda: manager.state.mark_destroying(PG))
    with pytest.raises(ConflictError, match="being destroyed"):
        await manager.state.link(PG, "web", "DATABASE_URL")
    assert destroy == ["done"]
    assert (await AttachmentStore(store).read("web")).links == {}
    lines: list[str] = []
    await manager.destroy("postgres", "db", lines.append)  # the destroy goes on
    assert [s.name for s in await manager.state.list("postgres")] == ["other"]
    assert await manager.registry.unit(PG.unit) is None


async def test_unlink_and_a_link_of_another_service_lose_neither(tmp_path: Path) -> None:
    store, manager = await _setup(tmp_path, "web")
    await manager.state.link(PG, "web", "DATABASE_URL")
    other = before_next_txn(store, lambda: manager.state.link(OTHER, "web", "OTHER_URL"))
    await manager.state.unlink(PG, "web")
    assert other == ["done"]
    assert list((await AttachmentStore(store).read("web")).links) == ["postgres:other"]
    assert await manager.state.links(PG) == {}
