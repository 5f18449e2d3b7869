"""Backup and restore use the public methods of the services and the PaaS, not their private
parts: a rename inside those classes cannot break a restore unnoticed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from shipmate import backup, config
from shipmate.errors import ShipmateError
from shipmate.paas.service import Paas
from shipmate.services.manager import ServiceManager
from shipmate.services.model import kind_of
from shipmate.testing.engine import FakeEngine
from shipmate.testing.store import memory_store


def _private_reaches(source: str) -> list[str]:
    """``x._name`` where ``x`` is not ``self`` (dunders and ``sys._getframe``-like module
    functions aside)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id == "self")):
            out.append(f"line {node.lineno}: .{node.attr}")
    return out


def test_the_finder_sees_a_private_reach() -> None:
    assert _private_reaches("self.paas._engine()\nself._x()\n") == ["line 1: ._engine"]


def test_no_backup_module_reaches_into_another_object() -> None:
    folder = Path(backup.__file__).parent
    found = {p.name: r for p in sorted(folder.glob("*.py"))
             if (r := _private_reaches(p.read_text()))}
    assert found == {}


async def test_require_engine_names_the_missing_engine(tmp_path: Path) -> None:
    store = await memory_store()
    cfg = config.load({}, state_dir=tmp_path)
    with pytest.raises(ShipmateError, match="no Docker engine"):
        Paas(store, None, cfg).require_engine()
    engine = FakeEngine()
    assert Paas(store, engine, cfg).require_engine() is engine


async def test_ensure_image_needs_an_engine(tmp_path: Path) -> None:
    store = await memory_store()
    cfg = config.load({}, state_dir=tmp_path)
    services = ServiceManager(store, None, cfg, Paas(store, None, cfg))
    with pytest.raises(ShipmateError, match="no Docker engine"):
        await services.ensure_image(kind_of("redis"), "7", lambda line: None)
