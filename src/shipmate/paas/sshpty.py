"""Run one command on a pseudo-terminal for an SSH client that asked for one (``ssh -t``):
what ``enter`` needs for an interactive shell in a container.

The command gets the slave side as its standard input, output and error, in a session of
its own; the master side is relayed to and from the SSH channel. A window-size change from
the client (asyncssh raises it on the channel's stdin as ``TerminalSizeChanged``) is set on
the terminal with ``TIOCSWINSZ`` and announced to the command with ``SIGWINCH`` (sent to its
process group, because it has no controlling terminal the kernel could signal through). The
command's exit status comes back; a client who leaves stops it."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import signal
import termios
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import asyncssh

from shipmate.paas.terminal import Terminal, exit_status, winsize

if TYPE_CHECKING:
    from shipmate.paas.sshserver import Closed, Reader, Writer

log = logging.getLogger(__name__)
CHUNK = 65536


async def run_on_pty(argv: Sequence[str], env: Mapping[str, str], terminal: Terminal,
                     stdin: Reader, stdout: Writer, closed: Closed | None = None) -> int:
    """Run ``argv`` (never through a shell) on a new pseudo-terminal of ``terminal``'s size
    and ``TERM``, relaying ``stdin`` to it and its output to ``stdout``; returns its exit
    status, or 255 when ``closed`` returns first (the client left: the command is stopped)."""
    master, slave = os.openpty()
    try:
        fcntl.ioctl(master, termios.TIOCSWINSZ, terminal.size)
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=slave, stdout=slave, stderr=slave, cwd="/",
            env={**env, "TERM": terminal.term}, start_new_session=True)
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)  # the command's copies alone keep it open: its exit ends the output
    os.set_blocking(master, False)
    feed = asyncio.create_task(_feed(stdin, master, proc.pid))
    out = asyncio.create_task(_relay_out(master, stdout))
    gone = asyncio.ensure_future(closed() if closed else asyncio.Event().wait())
    try:
        await asyncio.wait({out, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not out.done():
            log.info("ssh: the client of a terminal session went away; stopping it")
            return 255
        await out
        return exit_status(await proc.wait())
    finally:
        for task in (feed, out, gone):
            task.cancel()
        await asyncio.gather(feed, out, gone, return_exceptions=True)
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            await proc.wait()
        os.close(master)


def resize(master: int, pgid: int, size: bytes) -> None:
    """Set the terminal's window size and tell the command (its process group) so."""
    fcntl.ioctl(master, termios.TIOCSWINSZ, size)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGWINCH)


async def _feed(stdin: Reader, master: int, pgid: int) -> None:
    # The client's keystrokes to the terminal; window-size changes arrive on the same stream.
    while True:
        try:
            chunk = await stdin.read(CHUNK)
        except asyncssh.TerminalSizeChanged as change:
            resize(master, pgid, winsize(change.width, change.height, change.pixwidth,
                                         change.pixheight))
            continue
        except (asyncssh.BreakReceived, asyncssh.SignalReceived):
            continue  # the terminal is raw for `docker exec -t`: ^C arrives as a byte
        except (BrokenPipeError, ConnectionResetError):
            return
        if not chunk:
            return  # end of input: a terminal has no half-close, the command goes on
        if not await _write_all(master, chunk):
            return


async def _relay_out(master: int, stdout: Writer) -> None:
    # Until the last process holding the terminal has closed it (EIO on Linux), so nothing
    # the command printed before it exited is lost.
    while data := await _read(master):
        stdout.write(data)
        await stdout.drain()


async def _read(fd: int) -> bytes:
    while True:
        try:
            return os.read(fd, CHUNK)
        except BlockingIOError:
            await _ready(fd, asyncio.get_running_loop().add_reader,
                         asyncio.get_running_loop().remove_reader)
        except OSError as exc:
            if exc.errno == errno.EIO:
                return b""
            raise


async def _write_all(fd: int, data: bytes) -> bool:
    """Write all of ``data``; False when the terminal has gone."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            await _ready(fd, asyncio.get_running_loop().add_writer,
                         asyncio.get_running_loop().remove_writer)
        except OSError as exc:
            if exc.errno == errno.EIO:
                return False
            raise
    return True


async def _ready(fd: int, add: Callable[..., Any], remove: Callable[[int], Any]) -> None:
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def ready() -> None:
        # It can fire again before the waiting task runs: set the result once.
        if not waiter.done():
            waiter.set_result(None)

    add(fd, ready)
    try:
        await waiter
    finally:
        remove(fd)
