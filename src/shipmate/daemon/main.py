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
from shipmate.config import Config
from shipmate.daemon import process, wiring
from shipmate.daemon.api import make_app
from shipmate.daemon.components import Component, supervise
from shipmate.engine.base import Engine
from shipmate.errors import ShipmateError
from shipmate.store.base import Store

log = logging.getLogger(__name__)


class Daemon:
    """The running daemon: settings, store, engine, components and API server."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.started = time.time()
        self.store: Store = None  # type: ignore[assignment]  # set in run()
        self.engine: Engine | None = None
        self.engine_error: str | None = None
        self.components: list[Component] = []
        self.services: dict[str, Any] = {}  # shared objects components expose to the API
        self._stop = asyncio.Event()

    async def status(self) -> dict[str, Any]:
        """What runs, for ``shipmate status``."""
        engine: dict[str, Any] = {"address": self.config.docker_host, "version": None,
                                  "api_version": None, "error": self.engine_error}
        if self.engine is not None:
            try:
                v = await self.engine.version()
                engine.update(version=v.get("Version"), api_version=v.get("ApiVersion"))
            except ShipmateError as exc:
                engine["error"] = str(exc)
        return {
            "daemon": {"pid": os.getpid(), "version": __version__, "started": self.started,
                       "uptime": round(time.time() - self.started, 1),
                       "socket": str(self.config.socket),
                       "machine_id": self.config.machine_id},
            "store": {"backend": self.config.store, "revision": await self.store.revision(),
                      **({"endpoints": self.config.etcd_endpoints}
                         if self.config.store == "etcd" else
                         {"path": str(self.config.state_dir / "store.db")})},
            "engine": engine,
            "components": [c.describe() for c in self.components],
        }

    def request_stop(self) -> None:
        """Ask :meth:`run` to shut down."""
        self._stop.set()

    async def run(self) -> None:
        """Run until SIGTERM/SIGINT or :meth:`request_stop`."""
        cfg = self.config
        process.make_state_dir(cfg)
        self.store = await wiring.open_store(cfg)
        self.engine, self.engine_error = await wiring.open_engine(cfg)
        app = make_app(self)
        self.components = wiring.components(self, app)
        runner = await self._serve(app)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        for comp in self.components:
            comp.task = asyncio.create_task(supervise(comp), name=comp.name)
        log.info("shipmate daemon %s up on %s", __version__, cfg.socket)
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
        for comp in reversed(self.components):
            if comp.task:
                comp.task.cancel()
        for comp in reversed(self.components):
            if comp.task:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(comp.task, 20)
        for closer in self.services.get("closers", []):
            with contextlib.suppress(Exception):
                await closer()
        await runner.cleanup()
        with contextlib.suppress(FileNotFoundError):
            self.config.socket.unlink()
        if self.engine is not None:
            await self.engine.close()
        await self.store.close()
