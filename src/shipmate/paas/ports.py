"""Dokku's port mappings, ``ports:set/add/remove/clear/report APP http:80:5000``
(``scheme:host-port:container-port``), feeding the router.

What a mapping means here (the router serves plain HTTP; HTTPS is the router's own
business, see docs/router.md):

- host port 80 (or the router's HTTP port): the app answers by its names on the router's
  HTTP listener, as every app does;
- any other host port: the app's dedicated router port (any Host header), one per app;
- container port: the port the web process listens on; ``$PORT`` is set to it. An app has
  one (all mappings name the same container port).

Without mappings an app has Dokku's default, ``http:80:5000``, and (with no global domain)
the dedicated port Shipmate gave it. A change of host ports takes effect at once (the router
follows); a change of the container port redeploys the app's current release.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from shipmate.errors import ConflictError, ValidationError
from shipmate.paas.state import app_key
from shipmate.router import keys as route_keys
from shipmate.store.base import Store

if TYPE_CHECKING:
    from shipmate.paas.service import Paas

Emit = Callable[[str], None]
DEFAULT_CONTAINER_PORT = 5000
SCHEMES = ("http",)


@dataclasses.dataclass(frozen=True, order=True)
class PortMap:
    """One ``scheme:host:container`` mapping."""

    scheme: str
    host: int
    container: int

    def __str__(self) -> str:
        return f"{self.scheme}:{self.host}:{self.container}"


def parse_map(text: str) -> PortMap:
    """``http:80:5000`` -> PortMap; a clear error for anything else."""
    parts = text.strip().split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts[1:]):
        raise ValidationError(f"Invalid port mapping {text!r}",
                              hint="use SCHEME:HOST-PORT:CONTAINER-PORT, e.g. http:80:5000")
    scheme, host, container = parts[0].lower(), int(parts[1]), int(parts[2])
    if scheme not in SCHEMES:
        raise ValidationError(f"Port mapping {text!r}: scheme {scheme!r} is not supported",
                              hint="use http (HTTPS is set up on the router)")
    for port in (host, container):
        if not 1 <= port <= 65535:
            raise ValidationError(f"Port mapping {text!r}: port {port} is out of range 1-65535")
    return PortMap(scheme, host, container)


def plan(maps: list[PortMap], http_port: int) -> tuple[int, int | None]:
    """The container port and the dedicated router port (None: none) that ``maps`` give."""
    if not maps:
        return DEFAULT_CONTAINER_PORT, None
    containers = sorted({m.container for m in maps})
    if len(containers) > 1:
        raise ValidationError(f"Port mappings name container ports {containers}",
                              hint="an app's web process listens on one port: use the same "
                                   "container port in every mapping")
    extra = sorted({m.host for m in maps if m.host not in (80, http_port)})
    if len(extra) > 1:
        raise ValidationError(f"Port mappings name host ports {extra}",
                              hint="an app has one port of its own besides port 80")
    return containers[0], extra[0] if extra else None


def changed(maps: list[PortMap], body: Mapping[str, Any]) -> list[PortMap]:
    """The mappings after a ``ports:*`` change (``set``, ``add``, ``remove``, ``clear``)."""
    def words(key: str) -> list[str]:
        value = body.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValidationError(f"{key} must be a list of port mappings")
        return value

    if body.get("clear"):
        return []
    if "set" in body:
        return sorted({parse_map(w) for w in words("set")})
    out = set(maps) | {parse_map(w) for w in words("add")}
    for word in words("remove"):
        if word.isdigit():  # Dokku's `ports:remove APP 8080`: every mapping of that host port
            out = {m for m in out if m.host != int(word)}
        else:
            out.discard(parse_map(word))
    return sorted(out)


async def mappings(store: Store, app: str) -> list[PortMap]:
    """The app's mappings as set (empty: Dokku's default)."""
    kv = await store.get(app_key(app, "ports"))
    return [parse_map(t) for t in json.loads(kv.value)] if kv else []


async def container_port(store: Store, app: str) -> int:
    """The port the app's web process listens on."""
    maps = await mappings(store, app)
    return maps[0].container if maps else DEFAULT_CONTAINER_PORT


async def report(paas: Paas, app: str) -> dict[str, Any]:
    """``ports:report``: the mappings set, and those in effect."""
    await paas.state.get_app(app)
    maps = await mappings(paas.store, app)
    _, port = await paas.state.domains(app)
    effective = [str(m) for m in maps] or [f"http:80:{DEFAULT_CONTAINER_PORT}"] + (
        [f"http:{port}:{DEFAULT_CONTAINER_PORT}"] if port else [])
    return {"map": [str(m) for m in maps], "effective": effective,
            "container_port": maps[0].container if maps else DEFAULT_CONTAINER_PORT}


async def change(paas: Paas, app: str, body: Mapping[str, Any], emit: Emit) -> None:
    """Apply a ``ports:*`` change: record it, give the router the dedicated port, and
    redeploy when the container port changed."""
    old = await mappings(paas.store, app)
    new = changed(old, body)
    old_port = plan(old, paas.config.http_port)[0]
    port, dedicated = plan(new, paas.config.http_port)
    await _check_port_free(paas, app, dedicated)
    if new:
        await paas.store.put(app_key(app, "ports"), json.dumps([str(m) for m in new]))
    else:
        await paas.store.delete(app_key(app, "ports"))
    domains, current = await paas.state.domains(app)
    if dedicated != current and (new or old):
        await paas.state.set_domains(app, domains, dedicated)
    emit(f"-----> Port mappings of {app}: {' '.join(str(m) for m in new) or 'default'}")
    if port != old_port:
        emit(f"-----> The web process now listens on {port}; redeploying")
        await paas.restart(app, emit)


async def _check_port_free(paas: Paas, app: str, port: int | None) -> None:
    if port is None:
        return
    kvs, _ = await paas.store.range(route_keys.DOMAINS_PREFIX)
    for kv in kvs:
        other = kv.key[len(route_keys.DOMAINS_PREFIX):]
        if other != app and json.loads(kv.value).get("port") == port:
            raise ConflictError(f"port {port} is already the port of {other}",
                                hint="choose another host port")
