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


# Set on every repository at each push (so older repositories get them too).
REPO_SETTINGS = {
    "receive.denyDeletes": "true",
    "receive.denyNonFastforwards": "false",  # `git push --force` works, as on Dokku
    # Malformed objects (a tree entry named `..` or `.git`, a bad mode) are refused by git
    # with its own one-line message before anything is stored or built.
    "receive.fsckObjects": "true",
    # Private to the daemon's user: files git makes are 0600, directories 0700.
    "core.sharedRepository": "0600",
}


def ensure_repo(state_dir: Path, app: str, max_bytes: int = 0) -> Path:
    """Create the app's bare repository and its hook if missing, private to this user (0700
    directories, 0600 files); returns its path. ``max_bytes`` (``push_max_bytes``) bounds the
    pushed tree in the hook; git refuses a pack over twice that before writing it out (so a
    push a little over the limit gets the hook's clearer message)."""
    path = repo_path(state_dir, app)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    if not (path / "HEAD").exists():
        subprocess.run(["git", "init", "--bare", "-q", "--shared=0600", str(path)], check=True,
                       capture_output=True)
    if path.stat().st_mode & 0o077:  # made before repositories were private
        _make_private(path)
    settings = dict(REPO_SETTINGS)
    if max_bytes > 0:
        settings["receive.maxInputSize"] = str(2 * max_bytes)
    _configure(path, settings)
    hook = path / "hooks" / "pre-receive"
    text = HOOK.format(python=sys.executable)
    if not hook.exists() or hook.read_text() != text:
        hook.write_text(text)
        os.chmod(hook, 0o700)
    return path


def _configure(repo: Path, settings: dict[str, str]) -> None:
    listed = subprocess.run(["git", "config", "--file", str(repo / "config"), "--list"],
                            check=True, capture_output=True, text=True).stdout
    current = dict(line.partition("=")[::2] for line in listed.splitlines())
    for key, value in settings.items():
        if current.get(key.lower()) != value:
            subprocess.run(["git", "config", "--file", str(repo / "config"), key, value],
                           check=True, capture_output=True)


def _make_private(root: Path) -> None:
    for top, _dirs, files in os.walk(root):
        os.chmod(top, 0o700)
        for name in files:
            f = os.path.join(top, name)
            if not os.path.islink(f):
                os.chmod(f, os.lstat(f).st_mode & 0o700)


def parse_git_command(argv: list[str]) -> tuple[str, str] | None:
    """``git-receive-pack '/app'`` (as ssh sends it, already split) -> ("git-receive-pack",
    "app"); None if it is not a git command. The app name is validated."""
    if len(argv) != 2 or argv[0] not in ("git-receive-pack", "git-upload-pack"):
        return None
    name = argv[1].strip().strip("'\"").lstrip("/")
    name = name.removesuffix(".git")
    return argv[0], validate_app_name(name)
