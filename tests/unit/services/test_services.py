"""Services as data and records: names, URLs, the unit a service runs as, links on both
sides, and a linked service that cannot be destroyed."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipmate import config
from shipmate.errors import ConflictError, NotFoundError, ValidationError
from shipmate.paas.attach import AttachmentStore
from shipmate.paas.service import Paas
from shipmate.services.manager import ServiceManager
from shipmate.services.model import Service, kind_of, unit_text, validate_service_name
from shipmate.services.state import ServiceState
from shipmate.spec.unitcontainer import container_spec
from shipmate.spec.units import parse_unit
from shipmate.spec.unitshipmate import unit_options
from shipmate.testing.store import memory_store

PG = Service("postgres", "my-db", "15", "ab" * 16, 1.0, "m1")


def test_service_names_follow_dokku() -> None:
    assert validate_service_name("db-1") == "db-1"
    for bad in ("", "Db", "db_1", "-db", "db-", "a" * 41, "db.x", "../x"):
        with pytest.raises(ValidationError):
            validate_service_name(bad)
    with pytest.raises(ValidationError, match="postgres or redis"):
        kind_of("mysql")


def test_urls_name_the_container_on_the_private_network() -> None:
    assert PG.url == f"postgres://postgres:{'ab' * 16}@shipmate-postgres-my-db:5432/my_db"
    redis = Service("redis", "cache", "7", "pw", 1.0)
    assert redis.url == "redis://:pw@shipmate-redis-cache:6379"


@pytest.mark.parametrize("service", [PG, Service("redis", "cache", "7", "cd" * 16, 1.0)])
def test_the_unit_runs_one_server_on_its_volume_and_network_and_restarts(
        service: Service) -> None:
    unit = parse_unit(service.unit, unit_text(service))
    spec = container_spec(unit.file, service.unit, hostname="h", machine_id="m")
    assert spec.name == service.container and spec.network == service.network
    assert spec.restart == "always" and spec.health is not None and spec.ports == ()
    (mount,) = spec.mounts
    assert (mount.source, mount.target) == (service.volume, service.spec.data_dir)
    assert unit_options(unit.file, service.unit, spec).replace == "stop-first"
    assert service.password in str(spec.env)
    if service.kind == "redis":
        assert spec.command is not None and "--appendonly yes" in spec.command[-1]
        assert service.password not in " ".join(spec.command)  # from the environment


async def test_links_are_kept_on_both_sides_and_forgotten_with_the_app(
        tmp_path: Path) -> None:
    store = await memory_store()
    paas = Paas(store, None, config.load({}, state_dir=tmp_path))
    state = ServiceState(store)
    await state.create(PG)
    with pytest.raises(ConflictError):
        await state.create(PG)
    await paas.state.create_app("web")
    await state.link(PG, "web", "DATABASE_URL")
    assert await state.links(PG) == {"web": "DATABASE_URL"}
    link = (await AttachmentStore(store).read("web")).links["postgres:my-db"]
    assert (link.network, link.unit) == (PG.network, PG.unit)
    await paas.state.destroy_app("web")
    assert await state.links(PG) == {}  # the app's side went with it


async def test_a_linked_service_is_not_destroyed_and_unknown_ones_are_named(
        tmp_path: Path) -> None:
    store = await memory_store()
    paas = Paas(store, None, config.load({}, state_dir=tmp_path))
    manager = ServiceManager(store, None, paas.config, paas)
    await manager.state.create(PG)
    await paas.state.create_app("web")
    await manager.state.link(PG, "web", "DATABASE_URL")
    lines: list[str] = []
    with pytest.raises(ConflictError, match="Cannot delete linked service my-db: linked to web"):
        await manager.destroy("postgres", "my-db", lines.append)
    assert lines == [] and await manager.state.get("postgres", "my-db") == PG
    with pytest.raises(NotFoundError, match="Postgres service nope does not exist"):
        await manager.destroy("postgres", "nope", lines.append)
    with pytest.raises(ConflictError, match="Already linked"):
        await manager.link("postgres", "my-db", "web", "", lines.append)
