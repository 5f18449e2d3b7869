"""Issue 20's ``enter APP web.1 [CMD]`` over real SSH, as Dokku's ``ssh -t dokku@host enter``:
with ``ssh -t`` the command runs on a terminal (a /dev/pts device, the client's TERM, its
window size and its changes), an interactive shell typed into through a local pty exits with
the status it was given; without a terminal CMD runs on pipes with its output and exit code
relayed; a non-admin key enters only the apps granted to it."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.paas_helpers import (
    PaasDaemon,
    head,
    make_key,
    paas,
    run,
    unique,
    work_tree,
)

pytestmark = pytest.mark.integration
__all__ = ["paas"]  # the fixture, imported for pytest


@pytest.fixture(scope="module")
def app(paas: PaasDaemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One deployed app (a web.1 running on this machine) for the whole module."""
    name = unique("enter")
    tree = work_tree(tmp_path_factory.mktemp("enter") / "tree")
    push = paas.push(tree, name)
    assert push.returncode == 0, push.stdout + push.stderr
    paas.wait_page(name, head(tree)[:7])
    yield name


def _ssh(paas: PaasDaemon, *flags: str, line: str, key: Path | None = None,
         term: str = "vt220", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    # One word for the remote line: ssh joins its words with spaces, the server splits them
    # as a shell would (so the quotes here reach `sh -c` as one argument).
    return run([*paas.ssh_command(key).split(), *flags, "-p", str(paas.ssh_port),
                "shipmate@127.0.0.1", line], env={**os.environ, "TERM": term},
               timeout=timeout, input="")


def test_with_ssh_t_the_command_gets_a_terminal_and_the_client_s_term(
        paas: PaasDaemon, app: str) -> None:
    res = _ssh(paas, "-tt", line=f"enter {app} web.1 sh -c 'tty; echo TERM=$TERM'",
               term="screen-256color")
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert re.fullmatch(r"/dev/pts/\d+", lines[0]), res.stdout
    assert lines[1:] == ["TERM=screen-256color"], res.stdout
    res = _ssh(paas, "-tt", line=f"enter {app} web.1 sh -c 'exit 5'")
    assert res.returncode == 5, res.stdout + res.stderr


def test_without_a_terminal_cmd_runs_on_pipes_with_its_exit_code(
        paas: PaasDaemon, app: str) -> None:
    (info,) = paas.containers(app)
    hostname = info["Config"]["Hostname"]  # type: ignore[index]
    res = _ssh(paas, "-T", line=f"enter {app} web.1 cat /etc/hostname")
    assert (res.returncode, res.stdout, res.stderr) == (0, f"{hostname}\n", "")
    res = _ssh(paas, "-T", line=f"enter {app} web.1 sh -c 'tty; echo out; echo err >&2; "
                                "exit 7'")
    assert res.returncode == 7
    assert res.stdout == "not a tty\nout\n" and res.stderr == "err\n"
    # Standard input reaches the command; the default command is a shell reading it.
    res = run([*paas.ssh_command().split(), "-T", "-p", str(paas.ssh_port),
               "shipmate@127.0.0.1", f"enter {app} web"], input="echo $DYNO; exit 4\n")
    assert (res.returncode, res.stdout) == (4, "web.1\n")
    # Instance names are checked before anything is looked up.
    res = _ssh(paas, "-T", line=f"enter {app} 'web;id'")
    assert res.returncode == 1 and res.stderr.startswith(" !     Invalid instance 'web;id'")
    res = _ssh(paas, "-T", line=f"enter {app} worker")
    assert res.returncode == 1 and f"No running worker container of {app}" in res.stderr


class Pty:
    """A local terminal with ssh on it, typed into as a person would."""

    def __init__(self, argv: list[str], rows: int, cols: int) -> None:
        import pty
        self.master, slave = pty.openpty()
        self.resize(rows, cols)
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True, env={**os.environ,
                                                                  "TERM": "xterm-256color"})
        os.close(slave)
        self.seen = b""

    def resize(self, rows: int, cols: int) -> None:
        import fcntl
        import termios
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def wait_size(self, rows: int, cols: int, timeout: float = 30) -> None:
        """Ask the container's shell for its terminal's size until it is this one (docker
        exec sets it just after the shell starts, and again after each SIGWINCH)."""
        deadline = time.monotonic() + timeout
        while True:
            self.seen = b""
            self.send("stty size\r")
            self.expect(r"\r\n\d+ \d+\r\n(.*\r\n)?[^\r\n]*[#$] $")
            if f"\r\n{rows} {cols}\r\n".encode() in self.seen:
                return
            assert time.monotonic() < deadline, self.seen
            time.sleep(0.2)

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def expect(self, pattern: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern.encode(), self.seen):
            if time.monotonic() > deadline or not self._read(deadline - time.monotonic()):
                raise AssertionError(f"never saw {pattern!r} in {self.seen!r}")

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], max(timeout, 0))
        if not ready:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: ssh has exited and closed the terminal
            return False
        self.seen += data
        return bool(data)

    def finish(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._read(deadline - time.monotonic()):
            pass
        code = self.proc.wait(timeout=max(deadline - time.monotonic(), 1))
        os.close(self.master)
        return code


def test_an_interactive_shell_through_a_terminal(paas: PaasDaemon, app: str) -> None:
    term = Pty([*paas.ssh_command().split(), "-t", "-p", str(paas.ssh_port),
                "shipmate@127.0.0.1", f"enter {app} web.1"], rows=30, cols=90)
    try:
        term.expect(r"[#$] $")  # the container's shell prompts
        term.wait_size(30, 90)
        # A window-size change follows: ssh -> the server's pty -> docker exec's terminal.
        term.resize(41, 133)
        os.kill(term.proc.pid, signal.SIGWINCH)
        term.wait_size(41, 133)
        # Ctrl-C reaches the program in the container (the terminals are raw on the way).
        term.send("echo st''arted; sleep 300\r")
        term.expect(r"\r\nstarted\r\n")
        time.sleep(0.5)
        term.seen = b""
        term.send("\x03")
        term.expect(r"[#$] $", timeout=20)
        term.send("echo hi; exit 3\r")
        code = term.finish()
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
            term.proc.wait()
    assert code == 3, term.seen
    assert re.search(rb"\r\nhi\r\n", term.seen), term.seen


def test_a_non_admin_key_enters_only_its_apps(paas: PaasDaemon, app: str,
                                             tmp_path: Path) -> None:
    other = unique("enterother")
    paas.apps.add(other)
    paas.ok("apps:create", other)
    dev = make_key(tmp_path, "enterdev")
    paas.ok("ssh-keys:add", "enterdev", f"{dev}.pub")
    for flags in (["-T"], ["-tt"]):
        res = _ssh(paas, *flags, line=f"enter {app} web.1 echo in", key=dev)
        assert res.returncode == 1, res.stdout
        assert (f" !     User enterdev does not have permissions to run enter on {app}"
                in res.stderr), res.stderr
    paas.ok("acl:add", app, "enterdev")
    res = _ssh(paas, "-T", line=f"enter {app} web.1 echo in", key=dev)
    assert (res.returncode, res.stdout) == (0, "in\n"), res.stderr
    res = _ssh(paas, "-tt", line=f"enter {other} web.1 echo in", key=dev)
    assert res.returncode == 1
    assert f"User enterdev does not have permissions to run enter on {other}" in res.stderr
    events = [json.loads(line) for line in paas.ok("events", "-n", "50", "--format",
                                                   "json").splitlines()]
    assert {("enter", app), ("enter", other)} <= {
        (e["verb"], e["app"]) for e in events
        if e["actor"] == "enterdev" and e["outcome"] == "refused"}
