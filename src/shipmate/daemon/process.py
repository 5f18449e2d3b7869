"""Running the daemon in the background: ``shipmate up`` / ``shipmate down``, a pidfile and a
log file under the state dir."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from shipmate.config import Config
from shipmate.errors import ConflictError, ShipmateError


def pidfile(config: Config) -> Path:
    """Where the running daemon writes its PID."""
    return Path(config.state_dir) / "daemon.pid"


def logfile(config: Config) -> Path:
    """Where ``shipmate up`` sends the daemon's output."""
    return Path(config.state_dir) / "daemon.log"


#: Directories under the state dir that hold what only root may read: repositories, the
#: agent's unit files and journals (environment values), local cluster nodes' state.
PRIVATE_DIRS = ("repos", "agent", "cluster")


def make_state_dir(config: Config) -> Path:
    """The state dir, made if missing. It is 0711: others may pass through it (nginx's workers
    run as ``nobody`` and must reach the router's prefix, ``STATE_DIR/nginx``) but not list
    it; what is secret in it is private on its own (the store 0600, ``daemon.log`` 0600, the
    SSH host key 0600, :data:`PRIVATE_DIRS` 0700)."""
    path = Path(config.state_dir)
    path.mkdir(mode=0o711, parents=True, exist_ok=True)
    os.chmod(path, 0o711)  # noqa: S103 (traverse only: see the docstring)
    for name in PRIVATE_DIRS:
        sub = path / name
        sub.mkdir(mode=0o700, exist_ok=True)
        os.chmod(sub, 0o700)
    return path


def read_pid(config: Config) -> int | None:
    """The PID of a live daemon for this state dir, or None (a stale pidfile is ignored)."""
    try:
        pid = int(pidfile(config).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if not _alive(pid):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return pid if any(part == b"daemon" for part in cmdline) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def write_pidfile(config: Config) -> None:
    """Claim the pidfile for this process, refusing if another daemon holds it."""
    other = read_pid(config)
    if other is not None and other != os.getpid():
        raise ConflictError(f"a daemon already runs for {config.state_dir} (pid {other})",
                            hint="stop it with `shipmate down`")
    path = pidfile(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    os.replace(tmp, path)


def remove_pidfile(config: Config) -> None:
    """Remove the pidfile if it is ours."""
    with contextlib.suppress(FileNotFoundError, ValueError):
        if int(pidfile(config).read_text().strip()) == os.getpid():
            pidfile(config).unlink()


def spawn(config: Config) -> int:
    """Start ``shipmate daemon`` detached, output to the log file; returns its PID."""
    make_state_dir(config)
    # 0600: the log names apps, keys and errors; only root reads it (docs/security.md).
    fd = os.open(logfile(config), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)  # also when an older, world-readable log exists
    with os.fdopen(fd, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shipmate.cli.main", "daemon"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            env={**os.environ, **config.to_env()}, start_new_session=True, close_fds=True,
        )
    return proc.pid


def stop(config: Config, *, timeout: float = 20.0, handover: bool = False) -> int | None:
    """SIGTERM the daemon, SIGKILL after ``timeout``; returns the PID stopped, or None.
    With ``handover`` (SIGUSR2) it leaves the router's nginx running for the next daemon."""
    pid = read_pid(config)
    if pid is None:
        return None
    os.kill(pid, signal.SIGUSR2 if handover else signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    if _alive(pid):
        raise ShipmateError(f"daemon pid {pid} did not exit", hint=f"kill -9 {pid}")
    with contextlib.suppress(FileNotFoundError):
        pidfile(config).unlink()
    return pid
