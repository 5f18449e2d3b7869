"""The SSH server built into the daemon (asyncssh): ``git push`` to apps and every CLI command,
Dokku style (``ssh -p 2222 shipmate@HOST apps:list``). Only keys added with ``ssh-keys:add``
get in; every command runs with an argument list, never through a shell."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

import asyncssh

from shipmate.config import Config
from shipmate.errors import ShipmateError
from shipmate.paas.gitserver import ensure_repo, parse_git_command
from shipmate.paas.sshkeys import SshKeys
from shipmate.paas.state import PaasState

log = logging.getLogger(__name__)
# Commands that manage the daemon itself make no sense from a remote key holder.
REFUSED_REMOTE = frozenset({"daemon", "up", "down"})
# The only global options a remote command line may start with: the others would point the
# CLI at another daemon (--state-dir, --cluster) or show tracebacks (--debug).
_REMOTE_FLAGS = frozenset({"--help", "-h", "--version"})


def remote_argv(argv: list[str]) -> list[str]:
    """Check a CLI command line received over SSH and return it (pure). The command is found
    after the allowed global options, so ``--format json down`` is refused like ``down``."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        option, eq, _ = argv[i].partition("=")
        if option in _REMOTE_FLAGS:
            return argv
        if option != "--format":
            raise ShipmateError(f"option {option} cannot be used over SSH",
                                hint="run the command on the machine itself")
        i += 1 if eq else 2
    if i < len(argv) and argv[i] in REFUSED_REMOTE:
        raise ShipmateError(f"`{argv[i]}` can only be run on the machine itself")
    return argv


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
        record = await self.keys.find(str(key.get_fingerprint("sha256")))
        if record is None:
            log.warning("refused unknown ssh key %s for %s", key.get_fingerprint("sha256"),
                        username)
            return False
        if self.conn is not None:
            self.conn.set_extra_info(shipmate_key=record["name"])
        return True


class SshServer:
    """Serves git and the CLI over SSH on ``config.ssh_port``."""

    def __init__(self, config: Config, state: PaasState, keys: SshKeys) -> None:
        self.config = config
        self.state = state
        self.keys = keys
        self._server: Any = None

    async def run(self) -> None:
        """Serve until cancelled."""
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
        try:
            code = await self._dispatch(process)
        except ShipmateError as exc:
            for line in str(exc).splitlines():
                process.stderr.write(f" !     {line}\n".encode())
            code = 1
        except Exception as exc:  # never let one session take the server down
            log.exception("ssh session failed")
            process.stderr.write(f" !     internal error: {exc}\n".encode())
            code = 1
        process.exit(code)

    async def _dispatch(self, process: asyncssh.SSHServerProcess[bytes]) -> int:
        command = process.command
        if not command:
            process.stdout.write(b"Shipmate: run a command, e.g. "
                                 b"`ssh -p 2222 shipmate@host apps:list` or `help`\n")
            return 1
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise ShipmateError(f"cannot parse command: {exc}") from exc
        git = parse_git_command(argv)
        if git is not None:
            return await self._git(process, *git)
        if argv == ["help"]:
            argv = ["--help"]
        return await self._run(process, [sys.executable, "-m", "shipmate.cli.main",
                                         *remote_argv(argv)], {})

    async def _git(self, process: asyncssh.SSHServerProcess[bytes], verb: str, app: str) -> int:
        if verb == "git-receive-pack":
            if not await self.state.exists(app):
                await self.state.create_app(app)
                process.stderr.write(f"-----> Creating {app}...\n".encode())
            repo = ensure_repo(self.config.state_dir, app)
        else:
            await self.state.get_app(app)
            repo = ensure_repo(self.config.state_dir, app)
        return await self._run(process, [verb, str(repo)], {"SHIPMATE_APP": app})

    async def _run(self, process: asyncssh.SSHServerProcess[bytes], argv: list[str],
                   extra_env: dict[str, str]) -> int:
        env = {**os.environ, **self.config.to_env(), **extra_env}
        env.pop("SHIPMATE_DEBUG", None)
        # A session of its own, so that a client who leaves takes down the whole command
        # (git's hook included): a deploy it started is then cancelled, not left running.
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True)
        assert proc.stdin and proc.stdout and proc.stderr
        feed = asyncio.create_task(_pump_in(process.stdin, proc.stdin))
        pumps = asyncio.gather(_pump_out(proc.stdout, process.stdout),
                               _pump_out(proc.stderr, process.stderr))
        closed = asyncio.create_task(process.wait_closed())
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


async def _pump_out(source: asyncio.StreamReader, sink: asyncssh.SSHWriter[bytes]) -> None:
    # Copy the child's output to the channel until EOF, so nothing is lost before exit().
    while chunk := await source.read(65536):
        sink.write(chunk)
        await sink.drain()


async def _pump_in(source: asyncssh.SSHReader[bytes], sink: asyncio.StreamWriter) -> None:
    try:
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    except (BrokenPipeError, ConnectionResetError):
        return
    finally:
        if not sink.is_closing():
            sink.close()
