"""What is attached to an app besides its release: storage mounts and links to services.
Both change the app's units from the next deploy on (:func:`unit_extras`, pure) and are kept
with the app's records, so ``apps:destroy`` forgets them with the app.

Keys (JSON values):

- ``/shipmate/apps/<app>/storage``  [{"host", "container", "machine"}, ...]
- ``/shipmate/apps/<app>/links``    {"postgres:db": {"network", "unit"}, ...}

A link names the service's private network (the app's containers join it) and the service's
unit (in a cluster the app's units follow it: ``MachineOf=``). Storage is a directory of one
machine, so an app with storage runs there (``MachineID=``), which wins over following a
service (a service and the storage of an app linked to it belong on one machine).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

from shipmate.paas.state import app_key
from shipmate.paas.storage_rules import StorageMount
from shipmate.store.base import Op, Store


@dataclasses.dataclass(frozen=True)
class Link:
    """An app's link to a service: its network and its unit."""

    network: str
    unit: str


@dataclasses.dataclass(frozen=True)
class Attachments:
    """An app's storage mounts and service links."""

    mounts: tuple[StorageMount, ...] = ()
    links: Mapping[str, Link] = dataclasses.field(default_factory=dict)

    @property
    def machine(self) -> str:
        """The machine the app's storage is on ('' without storage)."""
        return next((m.machine for m in self.mounts if m.machine), "")


@dataclasses.dataclass(frozen=True)
class UnitExtras:
    """What attachments add to each process unit."""

    volumes: tuple[str, ...] = ()  # Volume= values
    networks: tuple[str, ...] = ()  # Network= values, the first one the container's own
    placement: tuple[tuple[str, str], ...] = ()  # [X-Fleet] options


def unit_extras(att: Attachments) -> UnitExtras:
    """The units' extra lines for ``att`` (pure, deterministic order)."""
    links = [att.links[k] for k in sorted(att.links)]
    placement: tuple[tuple[str, str], ...] = ()
    if att.machine:
        placement = (("MachineID", att.machine),)
    elif links:
        placement = tuple(("MachineOf", u) for u in sorted({lk.unit for lk in links}))
    return UnitExtras(tuple(m.spec for m in att.mounts),
                      tuple(dict.fromkeys(lk.network for lk in links)), placement)


def extras_lines(extras: UnitExtras) -> tuple[list[str], list[str]]:
    """``[Container]`` lines and the ``[X-Fleet]`` section's lines for ``extras``."""
    container = [f"Volume={v}" for v in extras.volumes]
    container += [f"Network={n}" for n in extras.networks]
    fleet = ["", "[X-Fleet]", *(f"{k}={v}" for k, v in extras.placement)] \
        if extras.placement else []
    return container, fleet


class AttachmentStore:
    """The attachment records of apps in the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def _json(self, key: str, default: object) -> object:
        kv = await self.store.get(key)
        return json.loads(kv.value) if kv else default

    async def read(self, app: str) -> Attachments:
        """Everything attached to ``app`` (nothing for an app without records)."""
        raw_mounts = await self._json(app_key(app, "storage"), [])
        raw_links = await self._json(app_key(app, "links"), {})
        assert isinstance(raw_mounts, list) and isinstance(raw_links, dict)
        return Attachments(tuple(StorageMount(**m) for m in raw_mounts),
                           {k: Link(**v) for k, v in raw_links.items()})

    async def set_mounts(self, app: str, mounts: list[StorageMount]) -> None:
        """Replace the app's mounts."""
        await self.store.put(app_key(app, "storage"),
                             json.dumps([m.to_json() for m in mounts], sort_keys=True))

    async def links_for_update(self, app: str) -> tuple[dict[str, Link], int]:
        """The app's links and the revision to compare against when writing them back with
        :func:`links_op` (0: the app has no links record)."""
        kv = await self.store.get(app_key(app, "links"))
        raw = json.loads(kv.value) if kv else {}
        return {k: Link(**v) for k, v in raw.items()}, kv.mod_revision if kv else 0

    async def set_link(self, app: str, name: str, link: Link | None) -> None:
        """Add (or, with None, remove) the link ``name`` (``postgres:db``)."""
        links = dict((await self.read(app)).links)
        if link is None:
            links.pop(name, None)
        else:
            links[name] = link
        await self.store.put(app_key(app, "links"), json.dumps(
            {k: dataclasses.asdict(v) for k, v in links.items()}, sort_keys=True))


def links_op(app: str, links: Mapping[str, Link]) -> Op:
    """The store operation that writes ``links`` as the app's links record."""
    return Op.put(app_key(app, "links"), json.dumps(
        {k: dataclasses.asdict(v) for k, v in links.items()}, sort_keys=True))


def placement_note(app: str, att: Attachments) -> str:
    """What ``ps:scale`` says about where an app with attachments runs ('' if anywhere)."""
    if att.machine:
        return (f"-----> {app} has local storage on machine {att.machine}: all its instances "
                "run there")
    if att.links:
        names = ", ".join(sorted(att.links))
        return f"-----> {app} is linked to {names}: all its instances run on that machine"
    return ""
