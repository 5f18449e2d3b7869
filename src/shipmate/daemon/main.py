"""``shipmate daemon``: one per machine. Opens the store and the engine, serves the API on a
unix socket, and runs the components this machine is configured for."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from typing import Any

from aiohttp import web

from shipmate import __version__
from shipmate.clock import within
from shipmate.config import Config
from shipmate.daemon import process
from shipmate.daemon.api import make_app
from shipmate.daemon.components import supervise
from shipmate.daemon.wiring import Wiring, build, open_engine, open_store
from shipmate.errors import ShipmateError

log = logging.getLogger(__name__)


class Daemon:
    """The running daemon: its wiring (settings, store, engine, components) and API server."""

    def __init__(self, wiring: Wiring) -> None:
        self.wiring = wiring
        self.config = wiring.config
        self.started = time.time()
        self._stop = asyncio.Event()
        self._handover = False

    async def status(self) -> dict[str, Any]:
        """What runs, for ``shipmate status``."""
        w = self.wiring
        engine: dict[str, Any] = {"address": self.config.docker_host, "version": None,
                                  "api_version": None, "error": w.engine_error}
        if w.engine is not None:
            try:
                v = await w.engine.version()
                engine.update(version=v.get("Version"), api_version=v.get("ApiVersion"))
            except ShipmateError as exc:
                engine["error"] = str(exc)
        return {
            "daemon": {"pid": os.getpid(), "version": __version__, "started": self.started,
                       "uptime": round(time.time() - self.started, 1),
                       "socket": str(self.config.socket),
                       "machine_id": self.config.machine_id},
            "store": {"backend": self.config.store, "revision": await w.store.revision(),
                      **({"endpoints": self.config.etcd_endpoints}
                         if self.config.store == "etcd" else
                         {"path": str(self.config.state_dir / "store.db")})},
            "engine": engine,
            "components": [c.describe() for c in w.components],
        }

    def request_stop(self) -> None:
        """Ask :meth:`run` to shut down."""
        self._stop.set()

    def request_handover(self) -> None:
        """Shut down but leave the router's nginx running (SIGUSR2, ``cluster init``): the
        next daemon on this state dir adopts it, so the apps keep answering meanwhile."""
        self._handover = True
        self._stop.set()

    async def run(self) -> None:
        """Serve the API and run the components until SIGTERM/SIGINT or :meth:`request_stop`."""
        runner = await self._serve(make_app(self))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGUSR2, self.request_handover)
        for comp in self.wiring.components:
            comp.task = asyncio.create_task(supervise(comp), name=comp.name)
        log.info("shipmate daemon %s up on %s", __version__, self.config.socket)
        try:
            await self._stop.wait()
        finally:
            await self._shutdown(runner)

    async def _serve(self, app: web.Application) -> web.AppRunner:
        sock = self.config.socket
        sock.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.UnixSite(runner, str(sock)).start()
        os.chmod(sock, 0o660)
        return runner

    async def _shutdown(self, runner: web.AppRunner) -> None:
        log.info("shutting down")
        # old instances a deploy was still draining go now, not never (the store and the
        # components are up until this is done)
        with contextlib.suppress(Exception):
            await self.wiring.paas.deployer.settle()
        components = self.wiring.components
        for comp in reversed(components):
            if comp.task:
                comp.task.cancel()
        for comp in reversed(components):
            if comp.task:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await within(comp.task, 20)
        for closer in () if self._handover else self.wiring.closers:
            with contextlib.suppress(Exception):
                await closer()
        await runner.cleanup()
        with contextlib.suppress(FileNotFoundError):
            self.config.socket.unlink()


async def run_daemon(config: Config) -> None:
    """``shipmate daemon``: open the store and the engine, build this machine's wiring, and
    run until stopped; the engine and the store are closed last."""
    process.make_state_dir(config)
    store = await open_store(config)
    try:
        engine, engine_error = await open_engine(config)
        try:
            await Daemon(build(config, store, engine, engine_error)).run()
        finally:
            if engine is not None:
                await engine.close()
    finally:
        await store.close()
