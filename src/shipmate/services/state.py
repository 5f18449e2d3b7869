"""Service records in the store.

Keys (JSON values):

- ``/shipmate/services/<kind>/<name>/meta``         a :class:`~.model.Service`
- ``/shipmate/services/<kind>/<name>/links/<app>``  {"env": "DATABASE_URL"}

The app's side of a link is its attachment record (:mod:`shipmate.paas.attach`), which
``apps:destroy`` forgets with the app; a link whose app is gone no longer counts.
"""

from __future__ import annotations

import json

from shipmate.errors import ConflictError, NotFoundError
from shipmate.paas.attach import AttachmentStore, Link
from shipmate.services.model import Service, kind_of, validate_service_name
from shipmate.store.base import Compare, Op, Store

PREFIX = "/shipmate/services/"


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
            if f"{service.kind}:{service.name}" in att.links:
                out[app] = str(json.loads(kv.value).get("env", ""))
        return out

    async def link(self, service: Service, app: str, env: str) -> None:
        """Record the link on both sides."""
        await self.attachments.set_link(app, f"{service.kind}:{service.name}",
                                        Link(service.network, service.unit))
        await self.store.put(service_key(service.kind, service.name, f"links/{app}"),
                             json.dumps({"env": env}))

    async def unlink(self, service: Service, app: str) -> None:
        """Forget the link on both sides."""
        await self.attachments.set_link(app, f"{service.kind}:{service.name}", None)
        await self.store.delete(service_key(service.kind, service.name, f"links/{app}"))

    async def destroy(self, service: Service) -> None:
        """Forget every record of the service."""
        await self.store.delete(f"{PREFIX}{service.kind}/{service.name}/", prefix=True)
