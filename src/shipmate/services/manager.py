"""Services' lifecycle, Dokku's ``postgres:*`` / ``redis:*``: create (image on first use,
unit, wait until it accepts connections), link and unlink (the app's config and network,
then a redeploy), info, list, restart, destroy; dumps through :mod:`.jobs`.

Data safety: nothing here removes a volume except :meth:`ServiceManager.destroy` of an
unlinked service; a redeploy, ``ps:scale`` or ``apps:destroy`` of a linked app never touches
the service (its unit is not the app's).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any

from shipmate.config import Config
from shipmate.engine.base import Engine
from shipmate.errors import ConflictError, ShipmateError, ValidationError
from shipmate.paas.model import validate_config_key
from shipmate.paas.service import Paas
from shipmate.scheduler.model import UnitState
from shipmate.scheduler.registry import Registry
from shipmate.services.backup_io import write_backup
from shipmate.services.backups import make_schedule, next_run, validate_directory
from shipmate.services.model import (
    KINDS,
    Kind,
    Service,
    check_port,
    kind_of,
    unit_text,
    validate_service_name,
)
from shipmate.services.state import ServiceState
from shipmate.store.base import Store

Emit = Callable[[str], None]
READY_TIMEOUT = 300.0  # a first start initialises the database
STOP_TIMEOUT = 60.0


class ServiceManager:
    """Postgres and Redis services of the cluster, managed from this machine."""

    def __init__(self, store: Store, engine: Engine | None, config: Config, paas: Paas) -> None:
        self.store, self.engine, self.config, self.paas = store, engine, config, paas
        self.state = ServiceState(store)
        self.registry = Registry(store)
        self._image_lock = asyncio.Lock()

    def require_engine(self) -> Engine:
        """This machine's engine, or an error saying there is none."""
        if self.engine is None:
            raise ShipmateError("no Docker engine on this machine",
                                hint="start one: dockerd >/var/log/dockerd.log 2>&1 &")
        return self.engine

    # create -------------------------------------------------------------------------------

    async def create(self, kind: str, name: str, version: str, emit: Emit) -> Service:
        """``KIND:create NAME``: image, record, unit; returns once it accepts connections."""
        spec = kind_of(kind)
        validate_service_name(name)
        version = version or spec.versions[0]
        if version not in spec.versions:
            raise ValidationError(f"{spec.title} {version} is not available",
                                  hint="versions: " + ", ".join(spec.versions))
        if name in {s.name for s in await self.state.list(kind)}:
            raise ConflictError(f"{spec.title} service {name} already exists")
        service = Service(kind, name, version, secrets.token_hex(16), time.time(),
                          self.config.machine_id)
        if await self.registry.unit(service.unit) is not None:
            raise ConflictError(f"a unit named {service.unit} already exists",
                                hint="choose another name, or `fleet destroy` that unit")
        await self.ensure_image(spec, version, emit)
        await self.state.create(service)
        emit(f"       Starting {service.unit}")
        await self.registry.submit(service.unit, unit_text(service))
        await self.registry.set_desired(service.unit, "launched")
        emit("       Waiting for container to be ready")
        await self.wait_ready(service)
        emit(f"=====> {spec.title} container created: {name}")
        return service

    async def ensure_image(self, spec: Kind, version: str, emit: Emit) -> None:
        """Build the image of ``spec`` at ``version`` from Debian's packages when it is
        missing or out of date (through the package cache when this machine runs one);
        one build at a time. ``KIND:create`` and a backup restore use it."""
        from shipmate.engine.images import bootstrap

        proxy = f"http://127.0.0.1:{self.config.cache_port}" if self.config.cache else None
        async with self._image_lock:
            await bootstrap(self.require_engine(), mirror=self.config.debian_mirror,
                            only=[spec.image(version)], progress=lambda m: emit(f"-----> {m}"),
                            apt_proxy=proxy)

    async def wait_ready(self, service: Service, timeout: float = READY_TIMEOUT) -> str:
        """Wait until the unit is active (its health check passes: it accepts connections);
        the machine it runs on."""
        deadline = time.monotonic() + timeout
        while True:
            state = await self._unit_state(service)
            if state is not None and state.active_state == "active":
                return state.machine
            if state is not None and state.active_state == "failed":
                raise ShipmateError(f"{service.unit} failed to start{await self._logs(service)}",
                                    hint=f"`shipmate fleet status {service.unit}` says more")
            if time.monotonic() > deadline:
                raise ShipmateError(f"{service.unit} did not accept connections within "
                                    f"{timeout:.0f}s{await self._logs(service)}")
            await asyncio.sleep(0.25)

    async def _unit_state(self, service: Service) -> UnitState | None:
        return next((s for s in await self.registry.unit_states() if s.unit == service.unit),
                    None)

    async def _logs(self, service: Service) -> str:
        if self.engine is None:
            return ""
        lines: list[str] = []
        with contextlib.suppress(ShipmateError):
            async for line in self.engine.logs(service.container, tail=15):
                lines.append(line)
        return ("\nlast output:\n" + "\n".join(lines)) if lines else ""

    # links --------------------------------------------------------------------------------

    async def link(self, kind: str, name: str, app: str, alias: str, emit: Emit) -> None:
        """``KIND:link NAME APP``: the app joins the service's network and gets its URL in
        ``DATABASE_URL`` / ``REDIS_URL`` (``ALIAS_URL`` with an alias), then redeploys."""
        service = await self.state.get(kind, name)
        await self.paas.state.get_app(app)
        env = validate_config_key(f"{alias.upper()}_URL" if alias else service.spec.env_var)
        if app in await self.state.links(service):  # checked again in the swap
            raise ConflictError(f"Already linked as {env}", hint=f"{kind}:unlink {name} {app}")
        current = (await self.paas.state.config(app)).get(env)
        if current is not None and current != service.url:
            raise ConflictError(f"{app} already has {env} set",
                                hint="unset it, or link with --alias NAME to set NAME_URL")
        await self.state.link(service, app, env)
        emit(f"-----> Setting config vars\n       {env}:  {_masked(service.url)}")
        await self.paas.change_config(app, {env: service.url}, (), True, emit)

    async def unlink(self, kind: str, name: str, app: str, emit: Emit) -> None:
        """``KIND:unlink NAME APP``: the URL is unset and the app redeploys off the network."""
        service = await self.state.get(kind, name)
        links = await self.state.links(service)
        if app not in links:
            raise ValidationError(f"Not linked to {app}", hint=f"{kind}:info {name} --links")
        await self.state.unlink(service, app)
        emit(f"-----> Unsetting {links[app]}")
        await self.paas.change_config(app, {}, (links[app],), True, emit)

    # reports ------------------------------------------------------------------------------

    async def info(self, kind: str, name: str) -> dict[str, Any]:
        """``KIND:info NAME``: Dokku's fields (and where it runs)."""
        service = await self.state.get(kind, name)
        state = await self._unit_state(service)
        container = await self.engine.inspect(service.container) if self.engine else None
        return {"dsn": service.url, "links": " ".join(sorted(await self.state.links(service))),
                "status": _status(state), "version": service.spec.image(service.version),
                "id": container.id if container else "", "machine": state.machine if state else "",
                "internal_ip": container.ip_address if container else "",
                "exposed_ports": _exposed(service), "data_dir": service.volume,
                "network": service.network, "unit": service.unit,
                "service_root": f"volume {service.volume}",
                **await self._backup_info(service)}

    async def list(self, kind: str) -> list[dict[str, Any]]:
        """``KIND:list``: name, version, status, exposed ports, links."""
        states = {s.unit: s for s in await self.registry.unit_states()}
        return [{"name": s.name, "version": s.spec.image(s.version),
                 "status": _status(states.get(s.unit)), "exposed_ports": _exposed(s),
                 "links": " ".join(sorted(await self.state.links(s)))}
                for s in await self.state.list(kind)]

    # backups ------------------------------------------------------------------------------

    async def backup(self, kind: str, name: str, directory: str, emit: Emit) -> str:
        """``KIND:backup NAME DIR``: one backup into ``DIR`` on this machine, now."""
        directory = validate_directory(directory)
        service = await self.local(kind, name)
        emit(f"-----> Backing up {name} to {directory}")
        path = await write_backup(self.require_engine(), service, directory, time.time())
        emit(f"=====> Backup written: {path}")
        return path

    async def schedule_backups(self, kind: str, name: str, cron: str, directory: str,
                               keep: int, emit: Emit) -> None:
        """``KIND:backup-schedule NAME CRON DIR [--keep N]`` (replaces an earlier one)."""
        schedule = make_schedule(cron, directory, keep, time.time())
        service = await self.state.get(kind, name)
        await self.state.set_backup_schedule(service, schedule)
        emit(f"=====> Backups of {name} scheduled: {schedule.describe()}; next run "
             f"{next_run(schedule, time.time())} (UTC), by the daemon of the machine that "
             "runs it")

    async def unschedule_backups(self, kind: str, name: str, emit: Emit) -> None:
        """``KIND:backup-unschedule NAME``: no more scheduled backups (files stay)."""
        service = await self.state.get(kind, name)
        if await self.state.backup_schedule(service) is None:
            raise ValidationError(f"{name} has no backup schedule",
                                  hint=f"{kind}:backup-schedule {name} CRON DIR sets one")
        await self.state.set_backup_schedule(service, None)
        emit(f"=====> Backups of {name} unscheduled (backups already made are kept)")

    async def _backup_info(self, service: Service) -> dict[str, str]:
        schedule = await self.state.backup_schedule(service)
        last = await self.state.last_backup(service)
        return {"backup_schedule": schedule.describe() if schedule else "-",
                "backup_next": next_run(schedule, time.time()) if schedule else "-",
                "backup_last": last.describe() if last else "-"}

    # expose -------------------------------------------------------------------------------

    async def expose(self, kind: str, name: str, port: int, emit: Emit) -> None:
        """``KIND:expose NAME [PORT]``: publish the server on a host port (a free one of
        this machine when none is given) and replace its container to do so."""
        service = await self.state.get(kind, name)
        if service.exposed:
            raise ConflictError(f"{name} is already exposed on port {service.exposed}",
                                hint=f"{kind}:unexpose {name} first")
        taken = {s.exposed for k in KINDS for s in await self.state.list(k)}
        port = check_port(port, taken) if port else _free_port()
        if not _port_free(port):
            raise ConflictError(f"Port {port} is in use on this machine",
                                hint="choose another port, or leave it out to get a free one")
        await self._republish(service, port, emit)
        emit(f"=====> {service.spec.title} service {name} exposed on port {port}")

    async def unexpose(self, kind: str, name: str, emit: Emit) -> None:
        """``KIND:unexpose NAME``: no host port any more (replaces its container)."""
        service = await self.state.get(kind, name)
        if not service.exposed:
            raise ValidationError(f"{name} is not exposed", hint=f"{kind}:info {name}")
        await self._republish(service, 0, emit)
        emit(f"=====> {service.spec.title} service {name} unexposed")

    async def _republish(self, service: Service, port: int, emit: Emit) -> None:
        """Replace the container with one published on ``port`` (0: none); when it does
        not come up (the engine could not bind the port), the previous one comes back."""
        changed = await self.state.set_exposed(service, port)
        emit(f"-----> Replacing container {changed.container} "
             f"({'publishing port ' + str(port) if port else 'no host port'})")
        await self.registry.replace(changed.unit, unit_text(changed))
        try:
            await self.wait_replaced(changed)
        except ShipmateError:
            emit(f" !     It did not start: going back to {_exposed(service)}")
            back = await self.state.set_exposed(changed, service.exposed)
            await self.registry.replace(back.unit, unit_text(back))
            await self.wait_replaced(back)
            raise

    async def wait_replaced(self, service: Service, timeout: float = READY_TIMEOUT) -> None:
        """Wait until the unit runs its current content and accepts connections."""
        record = await self.registry.unit(service.unit)
        deadline = time.monotonic() + timeout
        while True:
            state = await self._unit_state(service)
            current = state is not None and record is not None and state.hash == record.hash
            if current and state is not None and state.active_state == "active":
                return
            if current and state is not None and state.active_state == "failed":
                raise ShipmateError(f"{service.unit} failed to start{await self._logs(service)}")
            if time.monotonic() > deadline:
                raise ShipmateError(f"{service.unit} did not come back within {timeout:.0f}s"
                                    f"{await self._logs(service)}",
                                    hint=f"`shipmate fleet status {service.unit}` says more")
            await asyncio.sleep(0.25)

    # restart, destroy ---------------------------------------------------------------------

    async def restart(self, kind: str, name: str, emit: Emit) -> None:
        """``KIND:restart NAME``: stop the container (cleanly), start it, wait until ready."""
        service = await self.state.get(kind, name)
        emit(f"-----> Restarting container: {service.container}")
        await self.registry.set_desired(service.unit, "loaded")
        await self.wait_stopped(service)
        await self.registry.set_desired(service.unit, "launched")
        await self.wait_ready(service)
        emit(f"=====> {service.spec.title} service {name} restarted")

    async def wait_stopped(self, service: Service) -> None:
        """Wait until the unit is inactive (or failed)."""
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            state = await self._unit_state(service)
            if state is None or state.active_state in ("inactive", "failed"):
                return
            await asyncio.sleep(0.25)
        raise ShipmateError(f"{service.unit} did not stop within {STOP_TIMEOUT:.0f}s")

    async def destroy(self, kind: str, name: str, emit: Emit) -> None:
        """``KIND:destroy NAME``: refused while linked; else the unit, the container, the
        volume (its data) and the records go."""
        service = await self.state.get(kind, name)
        await self.state.mark_destroying(service)  # refused while linked; no links after
        state = await self._unit_state(service)
        emit(f"-----> Deleting {name}")
        await self.registry.destroy(service.unit)
        await self._wait_gone(service)
        here = state is None or state.machine == self.config.machine_id
        if here and self.engine is not None:
            await self.engine.remove_volume(service.volume)
            emit(f"       Removed volume {service.volume}")
        else:
            emit(f" !     Volume {service.volume} is on machine {state.machine if state else '?'}: "
                 f"remove it there with `docker volume rm {service.volume}`")
        await self.state.destroy(service)
        emit(f"=====> {service.spec.title} container deleted: {name}")

    async def _wait_gone(self, service: Service) -> None:
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.engine is not None and time.monotonic() < deadline:
            if await self.engine.inspect(service.container) is None:
                return
            await asyncio.sleep(0.25)

    async def local(self, kind: str, name: str) -> Service:
        """The service, which must run on this machine (dumps and connections are made
        here)."""
        service = await self.state.get(kind, name)
        info = await self.require_engine().inspect(service.container)
        if info is None or not info.running:
            state = await self._unit_state(service)
            where = f"on machine {state.machine}" if state else "nowhere yet"
            raise ShipmateError(f"{service.spec.title} service {name} is not running here "
                                f"(it runs {where})",
                                hint="run the command on that machine, or wait for it to start")
        return service


def _status(state: UnitState | None) -> str:
    if state is None:
        return "missing"
    return {"active": "running", "activating": "starting", "failed": "failed"}.get(
        state.active_state, "stopped")


def _free_port() -> int:
    """A TCP port nothing listens on now (the kernel's choice, as Dokku picks one)."""
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
        return True


def _exposed(service: Service) -> str:
    """Dokku's ``5432->PORT`` (``-`` when not exposed)."""
    return f"{service.spec.port}->{service.exposed}" if service.exposed else "-"


def _masked(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at:
        return url
    user = creds.partition(":")[0]
    return f"{scheme}{sep}{user}:********@{host}"
