"""Base-image recipes and input hashing (pure), and bootstrap's skip/rebuild logic on the
in-memory engine (the debootstrap path itself runs in tests/integration/test_images.py)."""

from __future__ import annotations

import pytest

from shipmate.engine import images_recipes as rc
from shipmate.engine.images import bootstrap
from shipmate.errors import ValidationError
from shipmate.testing import FakeEngine

MIRROR = "http://deb.debian.org/debian"


def hash_of(recipe, **changes):
    kw = {"mirror": MIRROR, "suite": "bookworm", "dockerfile": "FROM x", "parent_id": "sha256:1"}
    kw.update(changes)
    return rc.inputs_hash(recipe, **kw)


def test_recipes_are_parents_first():
    refs = [(r.ref, r.parent) for r in rc.recipes("bookworm")]
    assert refs == [("shipmate/base:bookworm", None),
                    ("shipmate/node:18", "shipmate/base:bookworm"),
                    ("shipmate/python:3.11", "shipmate/base:bookworm")]
    assert [r.ref for r in rc.recipes("trixie")] == ["shipmate/base:trixie"]


@pytest.mark.parametrize("change", [
    {"mirror": "http://mirror.example/debian"}, {"suite": "trixie"},
    {"dockerfile": "FROM y"}, {"parent_id": "sha256:2"},
])
def test_every_input_changes_the_hash(change):
    node = rc.recipes()[1]
    assert hash_of(node) != hash_of(node, **change)


def test_hash_is_stable_and_ignores_trailing_slash():
    node = rc.recipes()[1]
    assert hash_of(node) == hash_of(node, mirror=MIRROR + "/")
    assert len(hash_of(node)) == 64


def test_dockerfiles_ship_as_package_data():
    for recipe in rc.recipes():
        text = rc.dockerfile_text(recipe.dockerfile)
        assert "FROM ${" in text
    assert "nodejs npm" in rc.dockerfile_text("node.Dockerfile")
    assert "APT_PROXY" in rc.dockerfile_text("python.Dockerfile")


def test_build_args():
    base, node, _ = rc.recipes()
    assert rc.build_args(base, rootfs="shipmate/base:bookworm-rootfs", apt_proxy=None,
                         http_proxy=None) == {"ROOTFS": "shipmate/base:bookworm-rootfs"}
    assert rc.build_args(node, rootfs=None, apt_proxy="http://172.17.0.1:3142",
                         http_proxy="http://p:1") == {
        "BASE": "shipmate/base:bookworm", "APT_PROXY": "http://172.17.0.1:3142",
        "http_proxy": "http://p:1"}


@pytest.mark.parametrize(("suite", "mirror"), [
    ("bookworm; rm -rf /", MIRROR), ("Bookworm", MIRROR), ("bookworm", "ftp://x/debian"),
    ("bookworm", "http://x/debian --foo bar"), ("bookworm", "-v"),
])
def test_bad_suite_or_mirror_refused_before_anything_runs(suite, mirror):
    with pytest.raises(ValidationError):
        rc.validate(suite, mirror)


def warm_base(engine: FakeEngine, mirror: str = MIRROR) -> None:
    """A base image whose label matches what bootstrap would build (so no debootstrap)."""
    base = rc.recipes()[0]
    wanted = rc.inputs_hash(base, mirror=mirror, suite="bookworm",
                            dockerfile=rc.dockerfile_text(base.dockerfile), parent_id=None)
    engine.add_image(base.ref, {rc.INPUTS_LABEL: wanted})


async def test_bootstrap_builds_missing_children_then_changes_nothing():
    engine = FakeEngine()
    warm_base(engine)
    steps: list[str] = []
    first = await bootstrap(engine, mirror=MIRROR, progress=steps.append)
    assert [(r.ref, r.built) for r in first] == [
        ("shipmate/base:bookworm", False), ("shipmate/node:18", True),
        ("shipmate/python:3.11", True)]
    assert [w.action for w in engine.writes] == ["build", "build"]
    assert any(s.startswith("Bootstrapping shipmate/node:18") for s in steps)
    node = await engine.image("shipmate/node:18")
    assert node is not None and node.labels[rc.KIND_LABEL] == "shipmate/node:18"

    engine.writes.clear()
    second = await bootstrap(engine, mirror=MIRROR)
    assert engine.writes == []
    assert not any(r.built for r in second)
    assert [r.id for r in second] == [r.id for r in first]


async def test_new_base_image_cascades_to_children():
    engine = FakeEngine()
    warm_base(engine)
    await bootstrap(engine, mirror=MIRROR)
    warm_base(engine)  # same inputs, new image ID: as if rebuilt
    engine.writes.clear()
    results = await bootstrap(engine, mirror=MIRROR)
    assert [r.built for r in results] == [False, True, True]
    engine.writes.clear()
    await bootstrap(engine, mirror=MIRROR)
    assert engine.writes == []


async def test_failed_build_surfaces_and_stops():
    engine = FakeEngine()
    warm_base(engine)
    from shipmate.errors import EngineError

    engine.fail["build"] = EngineError("build of shipmate/node:18 failed: apt-get exited 100")
    with pytest.raises(EngineError, match="apt-get"):
        await bootstrap(engine, mirror=MIRROR)
    assert await engine.image("shipmate/python:3.11") is None


def test_select_adds_parents_and_refuses_unknown_names():
    all_recipes = rc.recipes()
    assert [r.ref for r in rc.select(all_recipes, {"shipmate/node:18"})] == [
        "shipmate/base:bookworm", "shipmate/node:18"]
    assert rc.select(all_recipes, None) == all_recipes
    with pytest.raises(ValidationError):
        rc.select(all_recipes, {"shipmate/ruby:3"})


async def test_rebuild_removes_the_superseded_images():
    engine = FakeEngine()
    warm_base(engine)
    first = await bootstrap(engine, mirror=MIRROR)
    warm_base(engine)
    await bootstrap(engine, mirror=MIRROR)
    for old in first[1:]:
        assert await engine.image(old.id) is None
