"""The daemon's composition root: which components this machine runs and how they are built
from settings, in one typed :class:`Wiring` made once by :func:`build`.

Each part is built after what it needs and gets it through its constructor, never bound on
afterwards: the image fetcher before the agent that uses it, the router before the PaaS
whose deploys wait for it. This is the one place that knows every subsystem's constructor;
the imports are local, so a machine configured without the router or the cache never loads
them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from shipmate.clock import SystemClock
from shipmate.config import Config
from shipmate.daemon.components import Component
from shipmate.engine.base import Engine
from shipmate.errors import ShipmateError
from shipmate.store.base import Store

if TYPE_CHECKING:
    from aiohttp import web

    from shipmate.agent.agent import Agent
    from shipmate.cache.server import CacheServer
    from shipmate.daemon.image_transfer import PeerImages
    from shipmate.paas.certs import Certs
    from shipmate.paas.cron_service import CronTasks
    from shipmate.paas.letsencrypt import LetsEncrypt
    from shipmate.paas.service import Paas
    from shipmate.router.controller import RouterController
    from shipmate.scheduler.engine import SchedulerEngine
    from shipmate.web.eventlog import EventLog
    from shipmate.web.users import Users

log = logging.getLogger(__name__)
Closer = Callable[[], Awaitable[None]]


@dataclasses.dataclass(frozen=True)
class Wiring:
    """Everything this machine's daemon runs, and what the API reaches into."""

    config: Config
    store: Store
    engine: Engine | None
    engine_error: str | None  # why the engine does not answer, when it does not
    agent: Agent
    scheduler: SchedulerEngine
    paas: Paas
    router: RouterController | None  # with the ``router`` setting
    cache: CacheServer | None  # with the ``cache`` setting
    images: PeerImages | None  # fetches images from peers (with an engine and ``api_port``)
    components: tuple[Component, ...]  # in start order; stopped in reverse
    closers: tuple[Closer, ...] = ()  # awaited at shutdown, after the components stop
    certs: Certs | None = None  # certs:* (HTTPS)
    letsencrypt: LetsEncrypt | None = None  # letsencrypt:* (ACME)
    events: EventLog | None = None  # the audit trail (shipmate events)
    users: Users | None = None  # dashboard users (shipmate users:*)
    cron: CronTasks | None = None  # cron:* (the scheduler leader fires the entries)


async def open_store(config: Config) -> Store:
    """The configured store backend (etcd with this machine's cluster certificate when
    ``cluster_tls_dir`` is set)."""
    from shipmate.store.open import open_store as _open

    if config.cluster_tls_dir and config.store == "etcd":
        from shipmate.cluster.tlsfiles import etcd_tls

        return await _open(config, etcd_tls(config.cluster_tls_dir))
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


def build(config: Config, store: Store, engine: Engine | None,
          engine_error: str | None = None) -> Wiring:
    """This machine's components, each built after (and with) what it needs."""
    from shipmate.agent.agent import Agent
    from shipmate.daemon.compactor import Compactor
    from shipmate.paas.service import Paas
    from shipmate.scheduler.engine import SchedulerEngine
    from shipmate.web.eventlog import EventLog
    from shipmate.web.users import Users

    clock = SystemClock()  # the one real clock (tests give each component a FakeClock)
    images = _peer_images(config, store, engine)
    agent = Agent(store, engine, config, fetcher=images, clock=clock)
    router, closers, http_log = _router(config, store) if config.router else (None, (), None)
    paas = Paas(store, engine, config, router=router, clock=clock)  # deploys wait for router
    cron = _cron(config, paas, images)
    scheduler = SchedulerEngine(store, config.machine_id, clock=clock, ttl=config.agent_ttl,
                                reconcile_interval=config.reconcile_interval,
                                leader_tasks=(cron.runner.lead,))
    cache = _cache(config) if config.cache else None
    comps = [Component("compactor", Compactor(store).run), Component("agent", agent.run),
             Component("scheduler", scheduler.run)]
    events = EventLog(store, config.events_max)
    if images is not None and engine is not None:
        comps.append(Component("images", _serve_images(config, engine, cache, store, events)))
    comps += _paas_components(config, paas, events)
    if router is not None:
        comps.append(Component("router", router.run))
    if http_log is not None:
        comps.append(http_log)
    if cache is not None:
        comps.append(Component("cache", _run_cache(cache)))
    certs, le, renewer = _tls(config, store, paas, router, scheduler)
    comps.append(renewer)
    if config.backup_schedule:
        comps.append(_scheduled_backups(config, store, engine, paas, scheduler))
    comps += _service_backups(config, store, engine, clock)
    users = Users(store)
    if config.dashboard_port:
        comps.append(_dashboard(config, store, paas, users, events, cache))
    closers += _build_fence(config, engine)
    return Wiring(config=config, store=store, engine=engine, engine_error=engine_error,
                  agent=agent, scheduler=scheduler, paas=paas, router=router, cache=cache,
                  images=images, components=tuple(comps), closers=closers, certs=certs,
                  letsencrypt=le, events=events, users=users, cron=cron)


def _cron(config: Config, paas: Paas, images: PeerImages | None) -> CronTasks:
    """Scheduled tasks: the scheduler leader fires them, in one-off containers on its own
    machine (fetching the image from a peer when it lacks it)."""
    from shipmate.paas.cron_runner import CronRunner, OneOffExecutor
    from shipmate.paas.cron_service import CronTasks

    executor = OneOffExecutor(paas.deployer.one_off, paas.engine, images)
    runner = CronRunner(paas.store, executor, config.machine_id, grace=config.cron_grace)
    return CronTasks(paas.store, runner)


def _dashboard(config: Config, store: Store, paas: Paas, users: Users, events: EventLog,
               cache: CacheServer | None) -> Component:
    """The web dashboard (with ``dashboard_port``): its listener and its route."""
    from shipmate.web.dashboard.listener import DashboardServer
    from shipmate.web.dashboard.server import Dashboard

    dash = Dashboard(store, paas, users, events, cache)
    return Component("dashboard", DashboardServer(dash, config).run)


def _build_fence(config: Config, engine: Engine | None) -> tuple[Closer, ...]:
    """At shutdown, this daemon's cache port leaves the build fence (its builds are over)."""
    from shipmate.paas.sandbox import BuildSandbox

    if engine is None or not config.build_sandbox or not config.cache:
        return ()
    return (BuildSandbox(engine, config).remove,)


def _tls(config: Config, store: Store, paas: Paas, router: RouterController | None,
         scheduler: SchedulerEngine) -> tuple[Certs, LetsEncrypt, Component]:
    """Certificates, ACME, and the renewal loop (it acts on the scheduler leader only)."""
    from shipmate.paas.certs import Certs
    from shipmate.paas.letsencrypt import LetsEncrypt, Renewer

    certs = Certs(store, paas.state)
    le = LetsEncrypt(store, certs, ca_bundle=config.acme_ca_bundle, router=router)
    renewer = Renewer(le, lambda: scheduler.is_leader, config.acme_renew_interval)
    return certs, le, Component("letsencrypt", renewer.run)


def _scheduled_backups(config: Config, store: Store, engine: Engine | None, paas: Paas,
                       scheduler: SchedulerEngine) -> Component:
    """Backups on ``backup_schedule`` (made on the scheduler leader only)."""
    from shipmate.backup.create import BackupMaker
    from shipmate.backup.schedule import ScheduledBackups
    from shipmate.services.manager import ServiceManager

    maker = BackupMaker(store, config, ServiceManager(store, engine, config, paas))
    return Component("backups", ScheduledBackups(maker, config,
                                                 lambda: scheduler.is_leader).run)


def _service_backups(config: Config, store: Store, engine: Engine | None,
                     clock: SystemClock) -> list[Component]:
    """Scheduled backups of the services this machine runs (they need its engine)."""
    if engine is None:
        return []
    from shipmate.services.backup_io import write_backup
    from shipmate.services.backup_scheduler import BackupScheduler
    from shipmate.services.model import Service

    async def backup(service: Service, directory: str, now: float) -> str:
        return await write_backup(engine, service, directory, now)

    scheduler = BackupScheduler(store, config.machine_id, backup, clock=clock)
    return [Component("service-backups", scheduler.run)]


def _peer_images(config: Config, store: Store, engine: Engine | None) -> PeerImages | None:
    """Image distribution (with ``api_port``): this machine's agent fetches the images it
    lacks from its peers. Every machine of a cluster serves on the same port: without one,
    there is no peer to ask either, and a missing image fails the unit as the engine says."""
    if engine is None or not config.api_port:
        return None
    from shipmate.daemon.image_transfer import PeerImages

    return PeerImages(store, engine, config)


def _serve_images(config: Config, engine: Engine, cache: CacheServer | None, store: Store,
                  events: EventLog) -> Callable[[], Awaitable[None]]:
    """Serve this machine's app images to its peers over TCP (and ``/metrics``, behind a
    token, with ``metrics_token_file``; and joins, on the machine holding the cluster CA)."""
    from shipmate.daemon.image_transfer import serve_images

    metrics = _tcp_metrics(config, cache)
    joins = _join_routes(config, store, events)

    def more(app: web.Application) -> None:
        for add in (metrics, joins):
            if add is not None:
                add(app)

    async def run() -> None:
        await serve_images(config, engine, more)

    return run


def _join_routes(config: Config, store: Store, events: EventLog
                 ) -> Callable[[web.Application], None] | None:
    """On the machine that ran ``cluster init`` (it holds the CA key): the join routes."""
    if not config.cluster_tls_dir:
        return None
    from shipmate.cluster import ca
    from shipmate.cluster import machine as mach
    from shipmate.store.etcd import EtcdStore
    from shipmate.store.metered import backend

    pki = ca.Pki(Path(config.cluster_tls_dir))
    mc = mach.load(config.state_dir)
    etcd = backend(store)  # the daemon's store is metered
    if not pki.can_sign() or mc is None or not isinstance(etcd, EtcdStore):
        return None
    from shipmate.cluster.admit import Admitter, add_join_routes

    admitter = Admitter(etcd, pki, mc.cluster, config.cluster_etcd_members, events)
    return lambda app: add_join_routes(app, admitter)


def _tcp_metrics(config: Config, cache: CacheServer | None
                 ) -> Callable[[web.Application], None] | None:
    if not config.metrics_token_file:
        return None
    from shipmate.web.metrics import add_tcp_metrics_route, read_token

    token = read_token(Path(config.metrics_token_file))  # a bad file stops the daemon now
    return lambda app: add_tcp_metrics_route(app, cache, token)


def _router(config: Config, store: Store
            ) -> tuple[RouterController, tuple[Closer, ...], Component]:
    """The router, and what follows its access log into the per-app HTTP metrics."""
    from shipmate.router.controller import RouterController
    from shipmate.router.logtail import HttpLogFollower
    from shipmate.router.nginx import Nginx

    nginx = Nginx(config.state_dir / "nginx", nginx_bin=config.nginx_bin,
                  http_port=config.http_port, https_port=config.https_port)
    controller = RouterController(store, nginx, global_domain=config.global_domain,
                                  interval=config.reconcile_interval,
                                  machine_id=config.machine_id)
    follower = HttpLogFollower(nginx.http_log, nginx.reopen_logs)
    return controller, (nginx.stop,), Component("router-log", follower.run)


def _cache(config: Config) -> CacheServer:
    from shipmate.cache.server import CacheServer

    return CacheServer(config)


def _run_cache(server: CacheServer) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        await server.start()
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    return run


def _paas_components(config: Config, paas: Paas, events: EventLog) -> list[Component]:
    """The PaaS's own loop: the SSH front door (the endpoints of its web units are published
    by the agent)."""
    comps = []
    if config.ssh:
        from shipmate.paas.sshserver import SshServer
        from shipmate.web.audit_http import ssh_note

        comps.append(Component("ssh", SshServer(config, paas.state, paas.keys,
                                                note=ssh_note(events)).run))
    return comps
