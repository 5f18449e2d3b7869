"""Which components a daemon runs and how they are built from settings. The one place that
knows every subsystem's constructor; each import is local so a machine configured without a
component never loads it."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from shipmate.config import Config
from shipmate.daemon.components import Component
from shipmate.engine.base import Engine
from shipmate.errors import ShipmateError
from shipmate.store.base import Store

if TYPE_CHECKING:
    from shipmate.agent.agent import Agent
    from shipmate.daemon.main import Daemon

log = logging.getLogger(__name__)


async def open_store(config: Config) -> Store:
    """The configured store backend."""
    from shipmate.store.open import open_store as _open

    return await _open(config)


async def open_engine(config: Config) -> tuple[Engine | None, str | None]:
    """The Docker engine, or None and the reason when none answers (the daemon still runs
    process units, the router and the cache without one)."""
    from shipmate.engine.docker import DockerEngine

    engine = DockerEngine(config.docker_host)
    try:
        await engine.version()
    except ShipmateError as exc:
        log.warning("no Docker engine: %s", exc)
        return engine, str(exc)
    return engine, None


def components(daemon: Daemon, app: web.Application) -> list[Component]:
    """Build this machine's components and add their API routes to ``app``."""
    cfg = daemon.config
    comps: list[Component] = []
    from shipmate.daemon.compactor import Compactor

    comps.append(Component("compactor", Compactor(daemon.store).run))
    builders = [_fleet, _paas]
    if cfg.router:
        builders.append(_router)
    if cfg.cache:
        builders.append(_cache)
    for build in builders:
        comps.extend(build(daemon, app))
    return comps


def _fleet(daemon: Daemon, app: web.Application) -> list[Component]:
    from shipmate.agent.agent import Agent
    from shipmate.agent.api import add_fleet_routes
    from shipmate.scheduler.engine import SchedulerEngine

    cfg = daemon.config
    agent = Agent(daemon.store, daemon.engine, cfg)
    scheduler = SchedulerEngine(daemon.store, cfg.machine_id, ttl=cfg.agent_ttl,
                                reconcile_interval=cfg.reconcile_interval)
    daemon.services.update(agent=agent, scheduler=scheduler)
    add_fleet_routes(app, daemon)
    comps = [Component("agent", agent.run), Component("scheduler", scheduler.run)]
    return comps + _images(daemon, agent)


def _images(daemon: Daemon, agent: Agent) -> list[Component]:
    """Image distribution (with ``api_port``): this machine serves its app images to its
    peers over TCP, and its agent fetches the images it lacks from them."""
    from shipmate.daemon.image_transfer import PeerImages, serve_images

    cfg, engine = daemon.config, daemon.engine
    # Every machine of a cluster serves on the same port: without one, there is no peer to
    # ask either, and a missing image fails the unit as the engine reports it.
    if engine is None or agent.containers is None or not cfg.api_port:
        return []
    agent.containers.fetcher = PeerImages(daemon.store, engine, cfg)

    async def run() -> None:
        await serve_images(cfg, engine)

    return [Component("images", run)]


def _router(daemon: Daemon, app: web.Application) -> list[Component]:
    from shipmate.router.controller import RouterController
    from shipmate.router.nginx import Nginx

    cfg = daemon.config
    nginx = Nginx(cfg.state_dir / "nginx", nginx_bin=cfg.nginx_bin, http_port=cfg.http_port)
    controller = RouterController(daemon.store, nginx, global_domain=cfg.global_domain,
                                  interval=cfg.reconcile_interval, machine_id=cfg.machine_id)
    daemon.services["router"] = controller
    if "paas" in daemon.services:  # deploys wait for this router to take a switch
        daemon.services["paas"].deployer.router = controller
    daemon.services.setdefault("closers", []).append(nginx.stop)
    return [Component("router", controller.run)]


def _cache(daemon: Daemon, app: web.Application) -> list[Component]:
    from shipmate.cache.server import CacheServer

    server = CacheServer(daemon.config)
    daemon.services["cache"] = server

    async def run() -> None:
        await server.start()
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    return [Component("cache", run)]


def _paas(daemon: Daemon, app: web.Application) -> list[Component]:
    from shipmate.paas.api import add_paas_routes
    from shipmate.paas.service import Paas
    from shipmate.paas.sshserver import SshServer

    cfg = daemon.config
    paas = Paas(daemon.store, daemon.engine, cfg)
    daemon.services["paas"] = paas
    add_paas_routes(app)
    comps = []  # the endpoints of its web units are published by the agent
    if cfg.ssh:
        ssh = SshServer(cfg, paas.state, paas.keys)
        comps.append(Component("ssh", ssh.run))
    return comps
