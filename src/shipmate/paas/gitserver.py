"""Bare git repositories for apps, with a pre-receive hook that builds and deploys before the
push is accepted (so a failed build rejects the push and the old release keeps serving)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shipmate.spec.names import validate_app_name

HOOK = """#!/bin/sh
# Installed by Shipmate: build and deploy the pushed revision before accepting it.
exec {python} -m shipmate.paas.hook
"""


def repo_path(state_dir: Path, app: str) -> Path:
    """Where an app's bare repository lives."""
    return Path(state_dir) / "repos" / f"{validate_app_name(app)}.git"


def ensure_repo(state_dir: Path, app: str) -> Path:
    """Create the app's bare repository and its hook if missing; returns its path."""
    path = repo_path(state_dir, app)
    if not (path / "HEAD").exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "--bare", "-q", str(path)], check=True,
                       capture_output=True)
        # Accept the push of a branch that is checked out nowhere, and keep pushed objects
        # out of the repository until the hook accepts them (git's quarantine does that).
        subprocess.run(["git", "-C", str(path), "config", "receive.denyDeletes", "true"],
                       check=True)
    hook = path / "hooks" / "pre-receive"
    text = HOOK.format(python=sys.executable)
    if not hook.exists() or hook.read_text() != text:
        hook.write_text(text)
        os.chmod(hook, 0o755)  # noqa: S103 - git must be able to run it
    return path


def parse_git_command(argv: list[str]) -> tuple[str, str] | None:
    """``git-receive-pack '/app'`` (as ssh sends it, already split) -> ("git-receive-pack",
    "app"); None if it is not a git command. The app name is validated."""
    if len(argv) != 2 or argv[0] not in ("git-receive-pack", "git-upload-pack"):
        return None
    name = argv[1].strip().strip("'\"").lstrip("/")
    name = name.removesuffix(".git")
    return argv[0], validate_app_name(name)
