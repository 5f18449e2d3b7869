"""The router's nginx: a dedicated master under its own prefix directory (never the system
nginx's config), fed whole configs that are tested before they go live.

Layout under the prefix: ``conf/nginx.conf`` (the live config, always the last good one),
``conf/nginx.conf.rejected`` (the last config nginx refused, for debugging), ``logs/``,
``run/nginx.pid``, ``tmp/`` (request body and proxy buffers), ``router.lock``.

This is the router's one I/O module: every nginx and OS failure is mapped here to
:class:`~shipmate.errors.ValidationError` (nginx refused a config) or
:class:`~shipmate.errors.RouterError` (nginx could not be run or reloaded).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import grp
import logging
import os
import re
import signal
from collections.abc import Mapping
from pathlib import Path

from shipmate.clock import within
from shipmate.errors import ConflictError, RouterError, ValidationError
from shipmate.router.accesslog import LOG_NAME
from shipmate.router.render import TLS_DIR, RenderOptions, render
from shipmate.router.routes import RouterState

log = logging.getLogger(__name__)

_POLL = 0.01
_EMERG = re.compile(r"^.*?\[emerg\] \d+#\d+: ")


class Nginx:
    """One nginx master process serving the router's config from ``prefix_dir``."""

    def __init__(
        self,
        prefix_dir: Path | str,
        nginx_bin: str = "nginx",
        http_port: int = 80,
        *,
        https_port: int = 0,
        options: RenderOptions | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.prefix = Path(prefix_dir).absolute()
        self.nginx_bin = nginx_bin
        self.http_port = http_port
        #: Where apps with a certificate answer over TLS (0: no HTTPS).
        self.https_port = https_port
        self.timeout = timeout
        opts = options or RenderOptions()
        #: How configs must be rendered for this nginx (e.g. which user its workers run as).
        self.render_options = opts if opts.worker_user else _with_worker_user(opts, self.prefix)
        self.config_path = self.prefix / "conf" / "nginx.conf"
        self.pid_path = self.prefix / "run" / "nginx.pid"
        self.error_log = self.prefix / "logs" / "error.log"
        #: The per-app structured access log (:mod:`shipmate.router.accesslog`).
        self.http_log = self.prefix / "logs" / LOG_NAME
        self.tls_dir = self.prefix / "conf" / TLS_DIR
        self._lock = asyncio.Lock()
        self._lock_fd: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._pid: int | None = None

    @property
    def pid(self) -> int | None:
        """The master's process ID while it runs."""
        return self._pid if self._pid and _alive(self._pid) else None

    async def start(self) -> None:
        """Start the master (or adopt one left running by an earlier daemon on this prefix).

        Starts with the last good config if there is one that still passes ``nginx -t``, else
        with an empty config (the 404 default server only)."""
        async with self._lock:
            await self._start()

    async def apply(self, config_text: str, files: Mapping[str, str] | None = None) -> bool:
        """Make ``config_text`` live. Returns False when it already is (no reload).

        ``files`` (name -> PEM certificate chain and key) are written to ``conf/tls/`` first,
        mode 0600 (only the master, root, reads them); once the config is live, the files
        it no longer names are removed. The text is tested with ``nginx -t`` first; if nginx
        refuses it (at the test or at the reload), the previous config stays live and
        ValidationError carries nginx's message."""
        files = files or {}
        async with self._lock:
            if self._lock_fd is None:
                await self._start()  # apply() before start(): start first
            if self.pid is None:
                log.warning("router: nginx master is gone; starting it again")
                await self._launch()
            current = _read(self.config_path)
            self._write_tls(files)
            if current == config_text:
                return False
            candidate = self.config_path.with_name("nginx.conf.new")
            _write_atomic(candidate, config_text)
            await self._test_or_reject(candidate)
            os.replace(candidate, self.config_path)
            try:
                await self._reload()
            except (ValidationError, RouterError) as exc:
                # The last good config goes back: a reload that did not happen (refused, or
                # a master that did not answer in time) must be tried again on the next pass,
                # not taken for live because the file already holds the text.
                _write_atomic(self.config_path, current or "")
                if isinstance(exc, ValidationError):
                    _write_atomic(self.config_path.with_name("nginx.conf.rejected"),
                                  config_text)
                raise
            self._prune_tls(set(files))
            return True

    async def check(self, config_text: str) -> str | None:
        """What ``nginx -t`` says against ``config_text`` (None: it passes). Nothing goes
        live; used to find which app's routes a refused config cannot hold."""
        probe = self.config_path.with_name(f"nginx.conf.probe-{os.getpid()}")
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(probe, config_text)
        try:
            ok, message = await self._test(probe)
        finally:
            probe.unlink(missing_ok=True)
        return None if ok else message

    async def reopen_logs(self) -> None:
        """Make nginx reopen its log files (``SIGUSR1``), after one was renamed away."""
        pid = self.pid
        if pid is None:
            raise RouterError("nginx is not running")
        os.kill(pid, signal.SIGUSR1)

    async def stop(self) -> None:
        """Stop the master gracefully (in-flight requests finish), then release the prefix."""
        async with self._lock:
            pid = self.pid
            if pid is not None:
                await self._terminate(pid)
            if self._proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    await within(self._proc.wait(), self.timeout)
            self._proc = None
            self._pid = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    # -- internals -------------------------------------------------------------------------

    def _write_tls(self, files: Mapping[str, str]) -> None:
        self.tls_dir.mkdir(mode=0o700, exist_ok=True)
        self.tls_dir.chmod(0o700)
        for name, pem in files.items():
            path = self.tls_dir / name
            if path.parent != self.tls_dir or name.startswith("."):
                raise ValidationError(f"unsafe certificate file name {name!r}")
            if _read(path) != pem:
                _write_atomic(path, pem, mode=0o600)

    def _prune_tls(self, keep: set[str]) -> None:
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.tls_dir):
                if entry.name not in keep and entry.name.endswith(".pem"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)

    async def _start(self) -> None:
        self._prepare_dirs()
        self._take_lock()
        adopted = self._running_master()
        if adopted is not None:
            log.info("router: adopting nginx master %d under %s", adopted, self.prefix)
            self._pid = adopted
            return
        await self._ensure_config()
        await self._launch()

    def _prepare_dirs(self) -> None:
        for sub in ("conf", "logs", "run", "tmp"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        # Workers (possibly "nobody") must traverse the prefix to reach tmp/.
        self.prefix.chmod(0o755)

    def _take_lock(self) -> None:
        if self._lock_fd is not None:
            return
        fd = os.open(self.prefix / "router.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConflictError(
                f"another Shipmate router already runs nginx under {self.prefix}",
                hint="stop the other daemon, or give this one its own state directory",
            ) from None
        self._lock_fd = fd

    def _running_master(self) -> int | None:
        try:
            pid = int(self.pid_path.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, ValueError):
            return None
        # nginx rewrites its argv ("nginx: master process nginx -p PREFIX/ ..."), so match text.
        ours = b"master process" in cmdline and f"-p {self.prefix}/ ".encode() in cmdline
        return pid if ours and _alive(pid) else None

    async def _ensure_config(self) -> None:
        if self.config_path.exists():
            ok, message = await self._test(self.config_path)
            if ok:
                return
            log.warning("router: the kept nginx config fails its test (%s); starting empty",
                        message)
        empty = render(RouterState(http_port=self.http_port, https_port=self.https_port),
                       self.render_options)
        _write_atomic(self.config_path, empty)
        await self._test_or_reject(self.config_path)

    def _base_args(self, config: Path) -> list[str]:
        return [self.nginx_bin, "-p", f"{self.prefix}/", "-e", str(self.error_log),
                "-c", str(config)]

    async def _test(self, config: Path) -> tuple[bool, str]:
        code, output = await self._run([*self._base_args(config), "-t", "-q"])
        problems = [line.removeprefix("nginx: ") for line in output.splitlines()
                    if "[emerg]" in line or "[crit]" in line or "[alert]" in line]
        return code == 0, "; ".join(problems) or output.strip()

    async def _test_or_reject(self, candidate: Path) -> None:
        ok, message = await self._test(candidate)
        if not ok:
            rejected = self.config_path.with_name("nginx.conf.rejected")
            os.replace(candidate, rejected)
            raise ValidationError(
                f"nginx refused the router config: {message}",
                hint=f"the previous config keeps serving; the refused one is in {rejected}",
            )

    async def _run(self, args: list[str]) -> tuple[int, str]:
        try:
            proc = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as exc:
            raise RouterError(f"cannot run {self.nginx_bin}: {exc}",
                              hint="apt-get install nginx, or set nginx_bin") from exc
        try:
            out, _ = await within(proc.communicate(), self.timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise RouterError(f"{' '.join(args)} did not finish in {self.timeout}s") from None
        return proc.returncode or 0, out.decode(errors="replace")

    async def _launch(self) -> None:
        self.pid_path.unlink(missing_ok=True)
        out = os.open(self.prefix / "logs" / "master.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                      0o644)
        try:
            # A session of its own: nginx keeps routing while the daemon restarts, and the
            # next daemon adopts it (see _running_master).
            self._proc = await asyncio.create_subprocess_exec(
                *self._base_args(self.config_path), "-g", "daemon off;",
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True,
            )
        except OSError as exc:
            raise RouterError(f"cannot run {self.nginx_bin}: {exc}",
                              hint="apt-get install nginx, or set nginx_bin") from exc
        finally:
            os.close(out)
        self._pid = self._proc.pid
        await self._wait_started(self._proc)

    async def _wait_started(self, proc: asyncio.subprocess.Process) -> None:
        deadline = asyncio.get_running_loop().time() + self.timeout
        while asyncio.get_running_loop().time() < deadline:
            if proc.returncode is not None:
                raise RouterError(
                    f"nginx exited at start (code {proc.returncode}): {self._log_tail()}",
                    hint=f"is port {self.http_port} free? see {self.prefix / 'logs'}",
                )
            if _read(self.pid_path).strip() == str(proc.pid) and _children(proc.pid):
                return
            await asyncio.sleep(_POLL)
        raise RouterError(f"nginx did not start within {self.timeout}s: {self._log_tail()}")

    async def _reload(self) -> None:
        pid = self._pid
        assert pid is not None
        before = _children(pid)
        log_size = _size(self.error_log)
        os.kill(pid, signal.SIGHUP)
        deadline = asyncio.get_running_loop().time() + self.timeout
        # The master forks new workers only once the new config loaded (sockets bound): a new
        # worker is the proof the reload took effect. Old workers keep accepting until they
        # handle their QUIT, when they retitle themselves "shutting down": wait for that too,
        # so that every connection made after apply() returns gets the new config.
        while asyncio.get_running_loop().time() < deadline:
            if _children(pid) - before and all(_retired(worker) for worker in before):
                return
            emerg = [_EMERG.sub("", ln) for ln in _read_from(self.error_log, log_size).splitlines()
                     if "[emerg]" in ln]
            if emerg or not _alive(pid):
                raise ValidationError(
                    "nginx could not load the router config: "
                    + ("; ".join(emerg) or "the master exited"),
                    hint="the previous config keeps serving (is a port taken?)",
                )
            await asyncio.sleep(_POLL)
        raise RouterError(f"nginx did not reload within {self.timeout}s: {self._log_tail()}")

    async def _terminate(self, pid: int) -> None:
        # QUIT is nginx's graceful shutdown; TERM then KILL if it hangs.
        for sig, wait in ((signal.SIGQUIT, self.timeout), (signal.SIGTERM, 2.0),
                          (signal.SIGKILL, 2.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = asyncio.get_running_loop().time() + wait
            while asyncio.get_running_loop().time() < deadline:
                if not _alive(pid):
                    return
                await asyncio.sleep(_POLL * 5)
        raise RouterError(f"nginx master {pid} did not stop")

    def _log_tail(self) -> str:
        text = _read(self.error_log) + _read(self.prefix / "logs" / "master.log")
        return " | ".join(text.strip().splitlines()[-3:])


def _with_worker_user(opts: RenderOptions, prefix: Path) -> RenderOptions:
    """As root, workers run as nobody when they can reach the prefix, else as root."""
    if os.geteuid() != 0:
        return opts
    # Missing directories are made later with mode 0755 (umask 022), so they count as reachable.
    reachable = all(_mode(p) & 0o001 for p in prefix.parents)
    if not reachable:
        log.warning("router: %s is not reachable by nobody; nginx workers run as root", prefix)
        user = "root"
    else:
        try:
            grp.getgrnam("nogroup")
            user = "nobody nogroup"
        except KeyError:
            user = "nobody"
    return RenderOptions(**{**opts.__dict__, "worker_user": user})


def _mode(path: Path) -> int:
    try:
        return os.stat(path).st_mode
    except FileNotFoundError:
        return 0o755


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def _retired(worker: int) -> bool:
    """True when an old nginx worker has exited or stopped accepting connections."""
    try:
        title = Path(f"/proc/{worker}/cmdline").read_bytes()
    except OSError:
        return True
    return not _alive(worker) or b"shutting down" in title


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                fields = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(entry.name))
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def _write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # Created with its final mode: a private key is never readable by others, even briefly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)
    with open(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
