"""A command on a pseudo-terminal relayed to an SSH channel (shipmate.paas.sshpty), with a
real pty and a real child process, the channel played by a queue: what the child sees
(a tty, TERM, the window size and its changes), what comes back (its output, its exit
status), and a client that leaves."""

import asyncio
import os
import sys

import asyncssh
import pytest

from shipmate.clock import within
from shipmate.paas.sshpty import run_on_pty
from shipmate.paas.terminal import Terminal
from shipmate.testing.streams import BufferWriter

CHILD = r"""
import os, signal, sys
signal.signal(signal.SIGWINCH, lambda *_: print("winch", os.get_terminal_size(0), flush=True))
print("tty", os.isatty(0), os.isatty(1), os.isatty(2), os.ttyname(0).startswith("/dev/pts/"))
print("term", os.environ["TERM"], os.environ["WHO"])
print("size", tuple(os.get_terminal_size(0)), flush=True)
line = sys.stdin.readline().strip()
print("got", line, tuple(os.get_terminal_size(0)))
sys.exit(int(line))
"""


class QueueReader:
    """The client's side: bytes to type, exceptions as asyncssh raises them on stdin."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | Exception] = asyncio.Queue()

    async def read(self, n: int = -1) -> bytes:
        item = await self.queue.get()
        if isinstance(item, Exception):
            raise item
        return item


async def _until(out: BufferWriter, text: bytes) -> None:
    async def seen() -> None:
        while text not in out.data:
            await asyncio.sleep(0.01)
    await within(seen(), 10)


async def test_the_child_runs_on_a_terminal_that_follows_the_client() -> None:
    stdin, out = QueueReader(), BufferWriter()
    session = asyncio.create_task(run_on_pty(
        [sys.executable, "-c", CHILD], {"WHO": "key"}, Terminal.requested("vt220", 100, 30),
        stdin, out))
    await _until(out, b"size (100, 30)")
    stdin.queue.put_nowait(asyncssh.TerminalSizeChanged(120, 40, 0, 0))
    await _until(out, b"winch os.terminal_size(columns=120, lines=40)")
    stdin.queue.put_nowait(asyncssh.BreakReceived(0))  # ignored, as by a raw terminal
    stdin.queue.put_nowait(b"3\r")  # Enter, as a terminal sends it
    code = await within(session, 10)
    assert code == 3
    lines = out.data.decode().splitlines()  # the terminal's \r\n
    assert "tty True True True True" in lines
    assert "term vt220 key" in lines
    assert "got 3 (120, 40)" in lines


async def test_output_printed_just_before_exit_is_not_lost() -> None:
    out = BufferWriter()
    script = "import sys; sys.stdout.write('x' * 200000 + 'END'); sys.exit(0)"
    stdin = QueueReader()
    stdin.queue.put_nowait(b"")  # end of input: the command goes on
    code = await within(run_on_pty([sys.executable, "-c", script], {},
                                  Terminal.requested("xterm", 80, 24), stdin, out), 20)
    assert code == 0
    assert out.data.endswith(b"END") and out.data.count(b"x") == 200000


async def test_a_client_that_leaves_stops_the_command() -> None:
    gone = asyncio.Event()
    out = BufferWriter()
    session = asyncio.create_task(run_on_pty(
        [sys.executable, "-c", "print('up', flush=True); import time; time.sleep(60)"], {},
        Terminal.requested("xterm", 80, 24), QueueReader(), out, gone.wait))
    await _until(out, b"up")
    gone.set()
    assert await within(session, 10) == 255


async def test_a_command_killed_by_a_signal_exits_128_plus_it() -> None:
    script = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    code = await within(run_on_pty([sys.executable, "-c", script], {},
                                  Terminal.requested("xterm", 80, 24), QueueReader(),
                                  BufferWriter()), 10)
    assert code == 137


async def test_a_command_that_cannot_start_raises_and_leaks_no_descriptor() -> None:
    argv = ["/nonexistent/program"]
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(FileNotFoundError):
        await run_on_pty(argv, {}, Terminal.requested("xterm", 80, 24), QueueReader(),
                         BufferWriter())
    assert len(os.listdir("/proc/self/fd")) == before
