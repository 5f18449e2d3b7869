"""The SSH server built into the daemon (asyncssh): ``git push`` to apps and every CLI command,
Dokku style (``ssh -p 2222 shipmate@HOST apps:list``). Only keys added with ``ssh-keys:add``
get in; every command runs with an argument list, never through a shell.

The CLI it starts talks to the daemon over its root socket, so whatever a key may not do is
refused here, before anything runs: what runs over SSH at all (:mod:`.sshpolicy`), then what
a non-admin key may run and on which app (:mod:`.aclpolicy`, :mod:`.acl`), git included. A
refusal is recorded in the audit trail under the key's name."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shlex
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import asyncssh

from shipmate.config import Config
from shipmate.errors import ForbiddenError, ShipmateError, ValidationError
from shipmate.paas import acl
from shipmate.paas.aclpolicy import GRANTED_ENV, app_named, check_git, check_line
from shipmate.paas.gitserver import ensure_repo, parse_git_command
from shipmate.paas.sshkeys import SshKeys, weakness
from shipmate.paas.sshpolicy import (
    REMOTE_ENV,
    SSH_USER,
    check_remote,
    command_name,
    redact,
)
from shipmate.paas.sshpty import run_on_pty
from shipmate.paas.state import PaasState
from shipmate.paas.terminal import Terminal
from shipmate.spec.names import APP_NAME

log = logging.getLogger(__name__)


class Note(Protocol):
    """``note(key, verb, app, summary)``: record a change in the audit trail; with
    ``refused``, a command refused (the message says why)."""

    async def __call__(self, key: str, verb: str, app: str, summary: str, *,
                       refused: str = "") -> None: ...


class Reader(Protocol):
    """What a session reads its standard input from (an SSH channel, or a test's stream)."""

    async def read(self, n: int = -1) -> bytes: ...


class Writer(Protocol):
    """Where a session writes its output (an SSH channel, or a test's buffer)."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


Closed = Callable[[], Awaitable[None]]


@dataclasses.dataclass(frozen=True)
class Streams:
    """One session's standard streams, and how to learn that its client has gone."""

    stdin: Reader
    stdout: Writer
    stderr: Writer
    closed: Closed | None = None
    #: The pseudo-terminal the client asked for (``ssh -t``), or None.
    terminal: Terminal | None = None


MAX_COMMAND = 65536  # bytes of one SSH command line; argv limits make longer ones fail later


def remote_argv(argv: list[str]) -> list[str]:
    """Check a CLI command line received over SSH against the allowlist
    (:data:`shipmate.paas.sshpolicy.COMMANDS`) and return it, or raise ShipmateError."""
    check_remote(argv)
    return argv


def parse_command(command: str) -> list[str]:
    """Split an SSH command line into words, refusing what no command can contain."""
    if "\0" in command:
        raise ValidationError("the command contains a NUL byte",
                            hint="arguments cannot contain NUL; send data on standard input")
    if len(command.encode(errors="surrogatepass")) > MAX_COMMAND:
        raise ValidationError(f"the command is longer than {MAX_COMMAND} bytes",
                            hint="send data on standard input")
    try:
        return shlex.split(command)
    except ValueError as exc:
        raise ValidationError(f"cannot parse command: {exc}",
                            hint="check the quoting of the command") from None


def host_key(state_dir: Path) -> asyncssh.SSHKey:
    """The server's host key, made once and kept (so clients' known_hosts stay valid)."""
    path = Path(state_dir) / "ssh_host_ed25519_key"
    if path.exists():
        return asyncssh.read_private_key(str(path))
    key = asyncssh.generate_private_key("ssh-ed25519")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(key.export_private_key())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return key


class _Server(asyncssh.SSHServer):
    def __init__(self, keys: SshKeys) -> None:
        self.keys = keys
        self.conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        fingerprint = str(key.get_fingerprint("sha256"))
        if username != SSH_USER:
            # Like Dokku's single `dokku` user: other names are mistakes or probes.
            log.warning("refused ssh user %r (only %s is served)", username[:64], SSH_USER)
            return False
        problem = weakness(key)
        if problem is not None:  # a key stored before weak keys were refused at ssh-keys:add
            log.warning("refused weak ssh key %s: %s", fingerprint, problem)
            return False
        record = await self.keys.find(fingerprint)
        if record is None:
            log.warning("refused unknown ssh key %s", fingerprint)
            return False
        if self.conn is not None:
            self.conn.set_extra_info(shipmate_key=record["name"])
        return True


class SshServer:
    """Serves git and the CLI over SSH on ``config.ssh_port``."""

    def __init__(self, config: Config, state: PaasState, keys: SshKeys, *,
                 note: Note | None = None) -> None:
        self.config = config
        self.state = state
        self.keys = keys
        #: Records a change made here rather than through the API (the audit trail).
        self.note = note
        self._server: Any = None

    async def run(self) -> None:
        """Serve until cancelled."""
        # asyncssh logs every command line at INFO, values of config:set included: only its
        # warnings reach the daemon log; commands are logged here, redacted (see _dispatch).
        logging.getLogger("asyncssh").setLevel(logging.WARNING)
        self._server = await asyncssh.create_server(
            lambda: _Server(self.keys), "", self.config.ssh_port,
            server_host_keys=[host_key(self.config.state_dir)],
            process_factory=self._handle, encoding=None, allow_scp=False,
            agent_forwarding=False, x11_forwarding=False, line_editor=False)
        try:
            await asyncio.Event().wait()
        finally:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        key = str(process.get_extra_info("shipmate_key") or "")
        term = process.get_terminal_type()
        terminal = None if term is None else Terminal.requested(term,
                                                                *process.get_terminal_size())
        code = await self.dispatch(process.command, key, process.stdin, process.stdout,
                                   process.stderr, closed=process.wait_closed,
                                   terminal=terminal)
        process.exit(code)

    async def dispatch(self, command: str | None, key: str, stdin: Reader, stdout: Writer,
                       stderr: Writer, *, closed: Closed | None = None,
                       terminal: Terminal | None = None) -> int:
        """Run one SSH command line for ``key``; errors become `` !     `` lines on
        ``stderr`` and exit status 1, never a traceback (the log has it). ``closed`` returns
        when the client has gone: the command is then stopped (a deploy it started is
        cancelled). With the ``terminal`` the client asked for, a command of
        the allowlist runs on a terminal (``enter``) runs on a
        pseudo-terminal; every other command runs on pipes as without one."""
        try:
            return await self._dispatch(command, key,
                                        Streams(stdin, stdout, stderr, closed, terminal))
        except ShipmateError as exc:
            for line in str(exc).splitlines():
                stderr.write(f" !     {line}\n".encode(errors="backslashreplace"))
        except Exception:  # never let one session take the server down
            log.exception("ssh session of key %s failed", key)
            stderr.write(b" !     internal error: the daemon log has the details\n")
        return 1

    async def _dispatch(self, command: str | None, key: str, io: Streams) -> int:
        if not command:
            io.stdout.write(b"Shipmate: run a command, e.g. "
                            b"`ssh -p 2222 shipmate@host apps:list` or `help`\n")
            return 1
        argv = parse_command(command)
        git = parse_git_command(argv)
        if git is not None:
            log.info("ssh: key %s: %s %s", key, *git)
            return await self._git(git, key, io)
        if argv == ["help"]:
            argv = ["--help"]
        log.info("ssh: key %s: %s", key, redact(argv)[:500])
        remote = check_remote(argv)
        env = {REMOTE_ENV: key or "-", **await self._authorize(argv, key)}
        cli = [sys.executable, "-m", "shipmate.cli.main", *argv]
        if io.terminal is not None and remote.terminal:
            return await run_on_pty(cli, self._env(env), io.terminal, io.stdin, io.stdout,
                                    io.closed)
        return await self._run(cli, env, io)

    async def _authorize(self, argv: list[str], key: str) -> dict[str, str]:
        """Refuse what a non-admin key may not run (recording the refusal); returns what the
        CLI's environment gets to check again and to show only granted apps (nothing for an
        admin)."""
        store = self.keys.store
        if await acl.is_admin(store, key):
            return {}
        granted = await acl.apps_for(store, key)
        name, first = command_name(argv)
        try:
            check_line(name, argv[first:], key, granted)
        except ForbiddenError as exc:
            await self._refused(key, name, app_named(name, argv[first:]), exc)
            raise
        return {GRANTED_ENV: " ".join(granted)}

    async def _authorize_git(self, push: bool, app: str, key: str) -> bool:
        """Refuse a push or fetch a non-admin key may not make; returns whether the app
        exists."""
        store = self.keys.store
        exists = await self.state.exists(app)
        if not await acl.is_admin(store, key):
            try:
                check_git(push, app, exists, key, await acl.apps_for(store, key))
            except ForbiddenError as exc:
                await self._refused(key, "git push" if push else "git fetch", app, exc)
                raise
        return exists

    async def _refused(self, key: str, verb: str, app: str, exc: ForbiddenError) -> None:
        log.warning("ssh: key %s refused: %s", key, exc.message)
        if self.note is not None:
            await self.note(key or "-", verb or "-", app if APP_NAME.fullmatch(app) else "",
                            "", refused=exc.message)

    async def _git(self, git: tuple[str, str], key: str, io: Streams) -> int:
        verb, app = git
        exists = await self._authorize_git(verb == "git-receive-pack", app, key)
        if verb == "git-receive-pack":
            if not exists:
                await self.state.create_app(app)
                io.stderr.write(f"-----> Creating {app}...\n".encode())
                if self.note is not None:
                    await self.note(key or "-", "apps:create", app, "by its first git push")
        else:
            await self.state.get_app(app)
        repo = await asyncio.to_thread(ensure_repo, self.config.state_dir, app,
                                       self.config.push_max_bytes)
        return await self._run([verb, str(repo)], {"SHIPMATE_APP": app, REMOTE_ENV: key or "-"},
                               io)

    def _env(self, extra_env: dict[str, str]) -> dict[str, str]:
        env = {**os.environ, **self.config.to_env()}
        env.pop("SHIPMATE_DEBUG", None)
        env.pop(GRANTED_ENV, None)  # only the server says what a key is granted
        env.update(extra_env)
        return env

    async def _run(self, argv: list[str], extra_env: dict[str, str], io: Streams) -> int:
        env = self._env(extra_env)
        # A session of its own, so that a client who leaves takes down the whole command
        # (git's hook included): a deploy it started is then cancelled, not left running.
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env, cwd="/", start_new_session=True)
        assert proc.stdin and proc.stdout and proc.stderr
        feed = asyncio.create_task(_pump_in(io.stdin, proc.stdin))
        pumps = asyncio.gather(_pump_out(proc.stdout, io.stdout),
                               _pump_out(proc.stderr, io.stderr))
        closed = asyncio.ensure_future(io.closed() if io.closed else asyncio.Event().wait())
        try:
            either: set[asyncio.Future[Any]] = {pumps, closed}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if not pumps.done():
                log.info("ssh: the client of %s went away; stopping it", argv[-1][:60])
                return 255
            await pumps
            return await proc.wait()
        finally:
            feed.cancel()
            closed.cancel()
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                pumps.cancel()
                await proc.wait()


async def _pump_out(source: asyncio.StreamReader, sink: Writer) -> None:
    # Copy the child's output to the channel until EOF, so nothing is lost before exit().
    while chunk := await source.read(65536):
        sink.write(chunk)
        await sink.drain()


async def _pump_in(source: Reader, sink: asyncio.StreamWriter) -> None:
    try:
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    except (BrokenPipeError, ConnectionResetError):
        return
    finally:
        if not sink.is_closing():
            sink.close()
