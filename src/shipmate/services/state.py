"""Service records in the store.

Keys (JSON values):

- ``/shipmate/services/<kind>/<name>/meta``         a :class:`~.model.Service`
- ``/shipmate/services/<kind>/<name>/links/<app>``  {"env": "DATABASE_URL"}

The app's side of a link is its attachment record (:mod:`shipmate.paas.attach`), which
``apps:destroy`` forgets with the app; a link whose app is gone no longer counts.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
from collections.abc import Callable

from shipmate.errors import ConflictError, NotFoundError
from shipmate.paas.attach import AttachmentStore, Link, links_op
from shipmate.paas.state import app_key
from shipmate.services.backups import BackupSchedule, LastBackup
from shipmate.services.model import Service, kind_of, validate_service_name
from shipmate.store.base import Compare, Op, Store

PREFIX = "/shipmate/services/"
CAS_TRIES = 20


def service_key(kind: str, name: str, part: str = "meta") -> str:
    """Key of one of a service's records (kind and name validated first)."""
    return f"{PREFIX}{kind_of(kind).name}/{validate_service_name(name)}/{part}"


class ServiceState:
    """Typed access to service records."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.attachments = AttachmentStore(store)

    async def create(self, service: Service) -> None:
        """Record a new service; refuses a name that is taken."""
        key = service_key(service.kind, service.name)
        res = await self.store.txn([Compare.missing(key)], [Op.put(key, service.to_json())])
        if not res.succeeded:
            raise ConflictError(f"{service.kind} service {service.name} already exists")

    async def get(self, kind: str, name: str) -> Service:
        """The service, or NotFoundError with Dokku's wording."""
        kv = await self.store.get(service_key(kind, name))
        if kv is None:
            raise NotFoundError(f"{kind_of(kind).title} service {name} does not exist",
                                hint=f"{kind}:list shows the services, {kind}:create makes one")
        return Service.from_json(kv.value)

    async def list(self, kind: str) -> list[Service]:
        """Every service of ``kind``, by name."""
        kvs, _ = await self.store.range(f"{PREFIX}{kind_of(kind).name}/")
        return sorted((Service.from_json(kv.value) for kv in kvs if kv.key.endswith("/meta")),
                      key=lambda s: s.name)

    async def links(self, service: Service) -> dict[str, str]:
        """Apps linked to ``service`` (that still exist and still hold the link): app ->
        the variable the link set."""
        prefix = service_key(service.kind, service.name, "links/")
        kvs, _ = await self.store.range(prefix)
        out = {}
        for kv in kvs:
            app = kv.key[len(prefix):]
            att = await self.attachments.read(app)
            if service.ref in att.links:
                out[app] = str(json.loads(kv.value).get("env", ""))
        return out

    async def link(self, service: Service, app: str, env: str) -> None:
        """Record the link on both sides, atomically: refused when the app already holds it,
        the app is gone or the service is being destroyed."""
        def change(svc: Service, links: dict[str, Link]) -> builtins.list[Op]:
            if svc.destroying:
                raise ConflictError(f"{svc.spec.title} service {svc.name} is being destroyed")
            if svc.ref in links:
                raise ConflictError(f"Already linked as {env}",
                                    hint=f"{svc.kind}:unlink {svc.name} {app}")
            links[svc.ref] = Link(svc.network, svc.unit)
            return [Op.put(service_key(svc.kind, svc.name, f"links/{app}"),
                           json.dumps({"env": env}))]
        await self._update(service, app, change)

    async def unlink(self, service: Service, app: str) -> None:
        """Forget the link on both sides, atomically."""
        def change(svc: Service, links: dict[str, Link]) -> builtins.list[Op]:
            links.pop(svc.ref, None)
            return [Op.delete(service_key(svc.kind, svc.name, f"links/{app}"))]
        await self._update(service, app, change)

    async def _update(self, service: Service, app: str,
                      change: Callable[[Service, dict[str, Link]], builtins.list[Op]]) -> None:
        """Change the links of ``service`` and ``app`` in one compare-and-swap transaction,
        retried when either record moved since it was read. The service's record is written
        back unchanged so its revision moves: a destroy that saw no link fails its own swap
        (:meth:`mark_destroying`), and of two concurrent links one retries on the other."""
        meta_key = service_key(service.kind, service.name)
        links_key = app_key(app, "links")
        for _ in range(CAS_TRIES):
            meta = await self.store.get(meta_key)
            if meta is None:
                raise NotFoundError(f"{service.spec.title} service {service.name} does not "
                                    "exist")
            links, links_rev = await self.attachments.links_for_update(app)
            ops = change(Service.from_json(meta.value), links)
            res = await self.store.txn(
                [Compare.mod_is(meta_key, meta.mod_revision),
                 Compare.mod_is(links_key, links_rev),
                 Compare(app_key(app, "meta"), "version", ">", 0)],
                [Op.put(meta_key, meta.value), links_op(app, links), *ops])
            if res.succeeded:
                return
            if not await self.store.get(app_key(app, "meta")):
                raise NotFoundError(f"App {app} does not exist")
        raise ConflictError(f"{service.name} or {app} kept changing; nothing was changed",
                            hint="try again")

    async def set_exposed(self, service: Service, port: int) -> Service:
        """Record the host port the service is published on (0: none); the new record."""
        meta_key = service_key(service.kind, service.name)
        for _ in range(CAS_TRIES):
            meta = await self.store.get(meta_key)
            if meta is None:
                raise NotFoundError(f"{service.spec.title} service {service.name} does not "
                                    "exist")
            changed = dataclasses.replace(Service.from_json(meta.value), exposed=port)
            if changed.destroying:
                raise ConflictError(f"{service.spec.title} service {service.name} is being "
                                    "destroyed")
            res = await self.store.txn([Compare.mod_is(meta_key, meta.mod_revision)],
                                       [Op.put(meta_key, changed.to_json())])
            if res.succeeded:
                return changed
        raise ConflictError(f"{service.name} kept changing; nothing was changed",
                            hint="try again")

    async def mark_destroying(self, service: Service) -> None:
        """Mark the service as going, once no app holds a link to it (checked and marked in
        one compare-and-swap: a link made meanwhile makes this fail, and a link made after
        it is refused)."""
        meta_key = service_key(service.kind, service.name)
        for _ in range(CAS_TRIES):
            meta = await self.store.get(meta_key)
            if meta is None:
                raise NotFoundError(f"{service.spec.title} service {service.name} does not "
                                    "exist")
            current = Service.from_json(meta.value)
            if links := await self.links(current):
                raise ConflictError(f"Cannot delete linked service {service.name}: linked to "
                                    f"{', '.join(sorted(links))}",
                                    hint=f"unlink it first: {service.kind}:unlink "
                                         f"{service.name} APP")
            going = dataclasses.replace(current, destroying=True)
            res = await self.store.txn([Compare.mod_is(meta_key, meta.mod_revision)],
                                       [Op.put(meta_key, going.to_json())])
            if res.succeeded:
                return
        raise ConflictError(f"{service.name} kept changing; it was not destroyed",
                            hint="try again")

    async def backup_schedule(self, service: Service) -> BackupSchedule | None:
        """The service's backup schedule, if it has one."""
        kv = await self.store.get(service_key(service.kind, service.name, "backup/schedule"))
        return BackupSchedule.from_json(kv.value) if kv else None

    async def set_backup_schedule(self, service: Service,
                                  schedule: BackupSchedule | None) -> None:
        """Set (or, with None, remove) the service's backup schedule (only while the
        service exists)."""
        meta = service_key(service.kind, service.name)
        key = service_key(service.kind, service.name, "backup/schedule")
        op = Op.put(key, schedule.to_json()) if schedule else Op.delete(key)
        res = await self.store.txn([Compare(meta, "version", ">", 0)], [op])
        if not res.succeeded:
            raise NotFoundError(f"{service.spec.title} service {service.name} does not exist")

    async def last_backup(self, service: Service) -> LastBackup | None:
        """The outcome of the service's latest scheduled backup."""
        kv = await self.store.get(service_key(service.kind, service.name, "backup/last"))
        return LastBackup.from_json(kv.value) if kv else None

    async def set_last_backup(self, service: Service, last: LastBackup) -> None:
        """Record a scheduled backup's outcome (only while the service exists)."""
        meta = service_key(service.kind, service.name)
        await self.store.txn([Compare(meta, "version", ">", 0)], [
            Op.put(service_key(service.kind, service.name, "backup/last"), last.to_json())])

    async def destroy(self, service: Service) -> None:
        """Forget every record of the service."""
        await self.store.delete(f"{PREFIX}{service.kind}/{service.name}/", prefix=True)
