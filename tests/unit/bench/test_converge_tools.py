"""bench/converge.py without docker-compose: installs it as root, or says how; never a
traceback. (Nothing is installed here: the install step is a stand-in that records argv.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import converge  # bench/ is not a package


class Installer:
    """Stands in for ``subprocess.run`` of scripts/bootstrap: records the command and, when
    it works, puts docker-compose on the (pretend) PATH."""

    def __init__(self, works: bool) -> None:
        self.works = works
        self.ran: list[list[str]] = []
        self.installed = False

    def run(self, argv: list[str], **_kw: Any) -> subprocess.CompletedProcess[bytes]:
        self.ran.append(argv)
        self.installed = self.works
        return subprocess.CompletedProcess(argv, 0 if self.works else 100)

    def which(self, name: str) -> str | None:
        return "/usr/bin/docker-compose" if name == "docker-compose" and self.installed else None


def setup(monkeypatch: pytest.MonkeyPatch, *, root: bool, works: bool = True) -> Installer:
    installer = Installer(works)
    monkeypatch.setattr(converge.shutil, "which", installer.which)
    monkeypatch.setattr(converge.subprocess, "run", installer.run)
    monkeypatch.setattr(converge.os, "geteuid", lambda: 0 if root else 1000)
    return installer


def test_as_root_the_missing_tool_is_installed(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    installer = setup(monkeypatch, root=True)
    converge.ensure_compose()
    assert installer.ran == [["bash", str(converge.ROOT / "scripts/bootstrap"),
                              "docker-compose"]]
    assert "installing docker-compose" in capsys.readouterr().out


def test_without_root_it_says_how(monkeypatch: pytest.MonkeyPatch) -> None:
    installer = setup(monkeypatch, root=False)
    with pytest.raises(SystemExit) as exit_:
        converge.ensure_compose()
    message = str(exit_.value.code)
    assert message.startswith(" !     docker-compose is missing")
    assert "apt-get install -y docker-compose" in message and "--skip-compose" in message
    assert installer.ran == []


def test_a_failed_install_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    setup(monkeypatch, root=True, works=False)
    with pytest.raises(SystemExit, match="installing docker-compose failed"):
        converge.ensure_compose()


def test_present_tool_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    installer = setup(monkeypatch, root=True)
    installer.installed = True
    converge.ensure_compose()
    assert installer.ran == []
