"""DockerEngine.rename and DockerEngine.update against the real dockerd, and converge using
them: a restart-policy change is made in place (same container), a replaced container gets
its plain name back."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from shipmate.converge.apply import apply_manifest, plan_manifest
from shipmate.engine.docker import DockerEngine
from shipmate.errors import EngineConflictError, NotFoundError
from shipmate.spec.container import make_spec
from shipmate.spec.manifest import MANIFEST_LABEL, load_manifest
from tests.integration.engine_helpers import RUN_ID, TEST_LABEL, name

pytestmark = pytest.mark.integration
BASE = "shipmate/base:bookworm"


def restart_policy(raw: object) -> str:
    assert isinstance(raw, dict)
    return str(raw["HostConfig"]["RestartPolicy"]["Name"])


async def test_rename_running_container(engine: DockerEngine, base_image: str) -> None:
    first, second, taken = name("ren"), name("ren"), name("taken")
    cid = await engine.create(make_spec(first, base_image, command=["sleep", "300"]),
                              extra_labels={TEST_LABEL: RUN_ID})
    await engine.start(cid)
    await engine.rename(cid, second)
    info = await engine.inspect(second)
    assert info is not None and info.id == cid and info.name == second and info.running
    assert await engine.inspect(first) is None
    await engine.create(make_spec(taken, base_image, command=["true"]),
                        extra_labels={TEST_LABEL: RUN_ID})
    with pytest.raises(EngineConflictError):
        await engine.rename(cid, taken)
    with pytest.raises(NotFoundError):
        await engine.rename("sm-test-no-such-container", name("x"))


@pytest.mark.parametrize("policy", ["always", "unless-stopped", "on-failure", "no"])
async def test_update_restart_policy_in_place(engine: DockerEngine, base_image: str,
                                              policy: str) -> None:
    start = "no" if policy != "no" else "always"
    cid = await engine.create(
        make_spec(name("upd"), base_image, command=["sleep", "300"], restart=start),
        extra_labels={TEST_LABEL: RUN_ID})
    await engine.start(cid)
    info = await engine.inspect(cid)
    assert info is not None and restart_policy(info.raw) == start
    pid = info.pid
    await engine.update(cid, restart=policy)
    info = await engine.inspect(cid)
    assert info is not None and restart_policy(info.raw) == policy
    assert info.id == cid and info.pid == pid  # same container, same process


async def test_update_missing_container(engine: DockerEngine) -> None:
    with pytest.raises(NotFoundError):
        await engine.update("sm-test-no-such-container", restart="always")


def write_manifest(path: Path, mname: str, cname: str, *, restart: str, value: str) -> Path:
    path.write_text(textwrap.dedent(f"""\
        name: {mname}
        containers:
          {cname}:
            image: {BASE}
            command: [sleep, "300"]
            env: {{VALUE: "{value}"}}
            restart: {restart}
            health: {{running_for: 0.5}}
        """))
    return path


async def test_converge_updates_in_place_and_replaces_under_the_same_name(
    engine: DockerEngine, base_image: str, tmp_path: Path
) -> None:
    mname, cname = name("man"), name("c")
    file = tmp_path / "m.yaml"
    try:
        r = await apply_manifest(engine, load_manifest(
            write_manifest(file, mname, cname, restart="no", value="a")), poll=0.1)
        assert r.ok, [o.message for o in r.failures]
        first = await engine.inspect(cname)
        assert first is not None

        m = load_manifest(write_manifest(file, mname, cname, restart="always", value="a"))
        plan = await plan_manifest(engine, m)
        assert [(a.kind, [c.field for c in a.changes]) for a in plan.actions] == [
            ("update", ["restart"])]
        r = await apply_manifest(engine, m, poll=0.1)
        assert r.ok, [o.message for o in r.failures]
        now = await engine.inspect(cname)
        assert now is not None and now.id == first.id and restart_policy(now.raw) == "always"
        assert not (await plan_manifest(engine, m)).changes_anything

        m = load_manifest(write_manifest(file, mname, cname, restart="always", value="b"))
        r = await apply_manifest(engine, m, poll=0.1)
        assert r.ok, [o.message for o in r.failures]
        replaced = await engine.inspect(cname)
        assert replaced is not None and replaced.id != first.id and replaced.running
        assert replaced.env["VALUE"] == "b"
        mine = await engine.list({MANIFEST_LABEL: mname})
        assert [c.name for c in mine] == [cname]
        assert not (await plan_manifest(engine, m)).changes_anything
    finally:
        for c in await engine.list({MANIFEST_LABEL: mname}):
            await engine.remove(c.id, force=True)
