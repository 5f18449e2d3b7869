"""The manifest CLI refuses bad manifests before talking to any engine, naming file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipmate.cli.main import main
from shipmate.cli.manifest import render_plan
from shipmate.converge.diff import FieldChange
from shipmate.converge.plan import Action, Plan


@pytest.mark.parametrize("verb", ["plan", "apply"])
def test_unknown_key_refused_with_file_and_line(
    verb: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("containers:\n  web:\n    image: x\n    portz: ['80:80']\n")
    assert main([verb, str(path), *(["--yes"] if verb == "apply" else [])]) == 1
    err = capsys.readouterr().err
    assert f"{path}:4: container web: unknown key 'portz'" in err


def test_via_daemon_refuses_a_saved_plan(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(Plan("shop", "/m.yaml", (), "f", "d").to_json()))
    assert main(["apply", str(path), "--via-daemon", "--yes"]) == 1
    assert "saved plan is for converging this Docker host directly" in capsys.readouterr().err


def test_render_marks_what_forces_replace() -> None:
    plan = Plan("shop", "/m.yaml", (
        Action("replace", "web", "env.A", (FieldChange("env.A", "1", "2"),
                                           FieldChange("restart", "no", "always")),
               strategy="start-first"),
        Action("noop", "db"),
    ), "f", "d", orphans=("old",))
    text = "\n".join(t for _, t in render_plan(plan))
    assert 'replace web (start-first): env.A' in text
    assert 'env.A: "1" -> "2"  (forces replace)' in text
    assert 'restart: "no" -> "always"  (in place)' in text
    assert "old: no longer declared" in text
    assert "0 to create, 0 to update, 1 to replace, 0 to delete, 1 unchanged." in text
